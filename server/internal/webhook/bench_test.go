package webhook

import (
	"testing"

	"wspush/server/internal/metrics"
)

// BenchmarkEmit is the producers' cost: one event into the buffer (a
// receiver drains it in the background, as Run would).
func BenchmarkEmit(b *testing.B) {
	s, err := New(Config{URL: "http://127.0.0.1:1/", Secret: "0123456789abcdef", Buffer: 1 << 16},
		metrics.New(func() int64 { return 0 }).Registry())
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-s.ch:
			case <-done:
				return
			}
		}
	}()
	defer close(done)
	b.ReportAllocs()
	for b.Loop() {
		s.ConnectionClosed("c1a", "ann", "idle")
	}
}

// BenchmarkEmitFull is the cost when the buffer is full: a drop.
func BenchmarkEmitFull(b *testing.B) {
	s, err := New(Config{URL: "http://127.0.0.1:1/", Secret: "0123456789abcdef", Buffer: 1},
		metrics.New(func() int64 { return 0 }).Registry())
	if err != nil {
		b.Fatal(err)
	}
	s.TopicOccupancy("x", true)
	b.ReportAllocs()
	for b.Loop() {
		s.TopicOccupancy("x", true)
	}
}
