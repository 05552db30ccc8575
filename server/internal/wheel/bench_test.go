package wheel

import (
	"testing"
	"time"
)

// BenchmarkAdvance measures visiting 100k entries in a 1,000-slot wheel: one
// op is one slot of 100 entries.
func BenchmarkAdvance(b *testing.B) {
	w := newWheel(b, time.Second, 1000)
	for i := 0; i < 100_000; i++ {
		_ = w.Add(&item{id: i})
	}
	sum := 0
	visit := func(_ time.Time, es []*item) {
		for _, e := range es {
			sum += e.id
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	now := t0
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Millisecond)
		w.Advance(now, visit)
	}
	_ = sum
}

func BenchmarkAddRemove(b *testing.B) {
	w := newWheel(b, time.Second, 1000)
	items := make([]*item, 100_000)
	for i := range items {
		items[i] = &item{id: i}
		_ = w.Add(items[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		it := items[i%len(items)]
		w.Remove(it)
		_ = w.Add(it)
	}
}
