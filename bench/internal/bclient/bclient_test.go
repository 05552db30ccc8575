package bclient

import "testing"

func TestSummarize(t *testing.T) {
	var lats []float64
	for i := 1; i <= 100; i++ {
		lats = append(lats, float64(i))
	}
	s := Summarize(lats, 102)
	if s.P50 != 50 || s.P99 != 99 || s.Max != 100 || s.Missing != 2 || s.N != 100 {
		t.Fatalf("%+v", s)
	}
	if z := Summarize(nil, 3); z.Missing != 3 || z.Max != 0 {
		t.Fatalf("%+v", z)
	}
}
