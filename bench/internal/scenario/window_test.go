package scenario

import (
	"math"
	"testing"

	"wspush/bench/internal/cpuquota"
	"wspush/loadgen/result"
)

func lagSeries(from int, lags ...float64) []result.Second {
	var ss []result.Second
	for t := 1; t < from; t++ {
		ss = append(ss, result.Second{T: t, Msgs: 10, LagP99: 5000}) // the ramp: never looked at
	}
	for i, l := range lags {
		msgs := int64(10)
		if l < 0 {
			msgs, l = 0, 0
		}
		ss = append(ss, result.Second{T: from + i, Msgs: msgs, LagP99: l})
	}
	return ss
}

func TestSettle(t *testing.T) {
	const from = 8
	for _, c := range []struct {
		name string
		lags []float64
		want int
	}{
		{"on time at once", []float64{3, 4, 5, 6}, from},
		{"catches up after three seconds", []float64{800, 400, 150, 40, 30, 20}, from + 3},
		{"one good second inside the catch-up is not enough", []float64{800, 50, 400, 60, 20, 20}, from + 3},
		{"silent seconds are not on time", []float64{-1, -1, 10, 10, 10}, from + 2},
		{"never on time", func() []float64 {
			l := make([]float64, MaxSettleS+6)
			for i := range l {
				l[i] = 500
			}
			return l
		}(), from + MaxSettleS},
		{"on time only after the limit", func() []float64 {
			l := make([]float64, MaxSettleS+6)
			for i := range l {
				l[i] = 500
				if i > MaxSettleS+1 {
					l[i] = 10
				}
			}
			return l
		}(), from + MaxSettleS},
		{"never on time, and the run ends before the limit: its last seconds", []float64{500, 500, 500, 500, 500, 500, 500}, from + 7 - MinWindowS},
		{"the run ends before from", []float64{}, from},
	} {
		if got := Settle(lagSeries(from, c.lags...), from); got != c.want {
			t.Errorf("%s: Settle = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestWindow(t *testing.T) {
	var ss []sample
	for k := 0; k <= 12; k++ {
		s := sample{at: float64(k) + 0.01, server: 0.5 * float64(k), machine: 1.2 * float64(k), backlog: -1,
			load:  coresSample{busy: int64(60 * k), total: int64(100 * k), ok: true},
			quota: cpuquota.Stat{Periods: int64(100 * k), Throttled: int64(30 * k)}, quotaOK: true}
		if k >= 2 && (k-2)%3 == 0 { // backlog read at 2, 5, 8, 11
			s.backlog = int64(1000 * k)
		}
		ss = append(ss, s)
	}
	w := window(ss, 4, 10)
	if !w.ok || math.Abs(w.seconds-6) > 1e-9 {
		t.Fatalf("window (4, 10]: ok %v over %.2f s, want 6 s", w.ok, w.seconds)
	}
	if math.Abs(w.server-0.5) > 1e-9 || math.Abs(w.machine-1.2) > 1e-9 {
		t.Errorf("server %.3f, machine %.3f cores; want 0.5 and 1.2", w.server, w.machine)
	}
	if math.Abs(w.loadBusy-0.6) > 1e-9 {
		t.Errorf("load busy %.3f, want 0.6", w.loadBusy)
	}
	if w.backlog0 != 5000 || w.backlog1 != 8000 {
		t.Errorf("backlog %d → %d, want the reads at 5 and 8 s (5000 → 8000)", w.backlog0, w.backlog1)
	}
	if !w.quotaOK || w.quota.ThrottledShare() != 0.3 {
		t.Errorf("quota %+v ok %v, want a share of 0.3", w.quota, w.quotaOK)
	}
	if w := window(ss, 20, 30); w.ok || w.backlog0 != -1 {
		t.Errorf("a window past the samples: %+v", w)
	}
	if w := window(ss, 6, 10); w.backlog0 != 8000 || w.backlog1 != 8000 {
		t.Errorf("one backlog read in the window: %d → %d, want 8000 → 8000", w.backlog0, w.backlog1)
	}
}
