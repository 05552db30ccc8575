package hub

import (
	"testing"
	"time"

	"wspush/server/internal/bus"
	"wspush/server/internal/metrics"
)

type discard struct{ c *Client }

func (d *discard) Write(b []byte) (int, error) { d.c.Written(len(b)); return len(b), nil }
func (d *discard) Close() error                { return nil }

// BenchmarkTickPath measures the push path — wheel slot → encode → write —
// with 100k registered clients on one shard, writing to sockets that take
// everything. It reports ns and allocations per push.
func BenchmarkTickPath(b *testing.B) {
	h, err := New(Config{PushInterval: time.Second, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1},
		metrics.New(func() int64 { return 0 }))
	if err != nil {
		b.Fatal(err)
	}
	const clients = 100_000
	for i := 0; i < clients; i++ {
		d := &discard{}
		d.c = h.NewClient(d)
		h.Register(d.c)
	}
	s := h.shards[0]
	now := time.Now()
	s.step(now)
	slot := h.visitPeriod / time.Duration(s.wheel.Slots())
	b.ReportAllocs()
	b.ResetTimer()
	start := h.m.Pushes.Get()
	for i := 0; i < b.N; i++ {
		now = now.Add(slot)
		s.step(now)
	}
	b.StopTimer()
	pushes := h.m.Pushes.Get() - start
	if pushes > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pushes), "ns/push")
		b.ReportMetric(float64(pushes)/float64(b.N), "pushes/op")
	}
}

// BenchmarkFanout measures one publish to a topic with 100k stream
// subscribers spread over 2 shards, driven here on one goroutine: bus
// sequencing and encoding, then each shard writing the shared frame to its
// subscribers. It reports ns and allocations per subscriber.
func BenchmarkFanout(b *testing.B) {
	h, err := New(Config{PushInterval: Disabled, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 2},
		metrics.New(func() int64 { return 0 }))
	if err != nil {
		b.Fatal(err)
	}
	bs := bus.New(bus.Config{}, h.Local())
	const subs = 100_000
	for i := 0; i < subs; i++ {
		d := &discard{}
		d.c = h.NewClient(d)
		h.Register(d.c)
		if err := bs.Subscribe(bus.Subscription{Subscriber: d.c, Topic: "prices", Quiet: true}); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	for _, s := range h.shards {
		s.step(now)
	}
	data := []byte(`{"bid":1.0842,"ask":1.0844}`)
	b.ReportAllocs()
	b.ResetTimer()
	start := h.m.Delivered.Get()
	for i := 0; i < b.N; i++ {
		if _, err := bs.Publish("prices", data); err != nil {
			b.Fatal(err)
		}
		for _, s := range h.shards {
			s.step(now)
		}
	}
	b.StopTimer()
	delivered := h.m.Delivered.Get() - start
	if delivered != uint64(b.N)*subs {
		b.Fatalf("delivered %d, want %d", delivered, uint64(b.N)*subs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(delivered), "ns/subscriber")
}
