package metrics

import "testing"

// The hot paths' metric operations: each must stay at 0 allocations (the
// tick and write paths call them per slot and per frame).

func BenchmarkCounterInc(b *testing.B) {
	m := New(func() int64 { return 0 })
	b.ReportAllocs()
	for b.Loop() {
		m.FramesOut.Inc()
	}
}

func BenchmarkCounterAdd(b *testing.B) {
	m := New(func() int64 { return 0 })
	b.ReportAllocs()
	for b.Loop() {
		m.BytesOut.Add(117)
	}
}

func BenchmarkClosed(b *testing.B) {
	m := New(func() int64 { return 0 })
	b.ReportAllocs()
	for b.Loop() {
		m.Closed(ClosedSlow)
	}
}

func BenchmarkTickLagUpdate(b *testing.B) {
	m := New(func() int64 { return 0 })
	b.ReportAllocs()
	v := 0.0
	for b.Loop() {
		m.TickLag.Update(v)
		v += 0.0001
		if v > 0.2 {
			v = 0
		}
	}
}

func BenchmarkCounterIncParallel(b *testing.B) {
	m := New(func() int64 { return 0 })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.FramesOut.Inc()
		}
	})
}
