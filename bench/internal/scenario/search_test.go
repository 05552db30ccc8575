package scenario

import (
	"testing"
	"time"
)

// run drives a search against a target that passes iff interval ≥ limit.
func run(s *Search, limit time.Duration) []time.Duration {
	var tried []time.Duration
	for {
		d, ok := s.Next()
		if !ok {
			return tried
		}
		tried = append(tried, d)
		s.Record(d, d >= limit)
	}
}

func TestSearchConverges(t *testing.T) {
	s := NewSearch(2*time.Second, 50*time.Millisecond, 5)
	tried := run(s, 300*time.Millisecond)
	if len(tried) != 5 {
		t.Fatalf("tried %v, want 5 trials", tried)
	}
	if tried[0] != 316*time.Millisecond {
		t.Fatalf("first trial %v, want the geometric mean 316ms", tried[0])
	}
	best, ok, censored := s.Best()
	if !ok || censored {
		t.Fatalf("best %v ok %v censored %v", best, ok, censored)
	}
	// 40x range, 5 halvings of the log: within a factor 40^(1/32) ≈ 1.12
	if best < 300*time.Millisecond || float64(best) > 1.13*float64(300*time.Millisecond) {
		t.Fatalf("best %v, want within 13%% above 300ms", best)
	}
}

func TestSearchNothingPasses(t *testing.T) {
	s := NewSearch(2*time.Second, 50*time.Millisecond, 3)
	tried := run(s, time.Hour)
	if len(tried) != 4 || tried[3] != 2*time.Second {
		t.Fatalf("tried %v, want 3 bisections then Hi", tried)
	}
	if _, ok, _ := s.Best(); ok {
		t.Fatal("a pass was reported")
	}
}

func TestSearchEverythingPasses(t *testing.T) {
	s := NewSearch(2*time.Second, 50*time.Millisecond, 4)
	run(s, 0)
	best, ok, censored := s.Best()
	if !ok || !censored || best >= 70*time.Millisecond {
		t.Fatalf("best %v ok %v censored %v; want close to Lo and censored", best, ok, censored)
	}
}
