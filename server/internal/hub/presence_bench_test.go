package hub

import (
	"runtime"
	"testing"
	"time"

	"wspush/server/internal/bus"
	"wspush/server/internal/metrics"
)

// benchTicks is BenchmarkTickPath with every client subscribed to one
// topic (stream mode), with or without presence; with change set, the
// topic's count changes before every wheel step, so that every tick
// carries the presence field.
func benchTicks(b *testing.B, presence, change bool) {
	h, err := New(Config{PushInterval: time.Second, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1},
		metrics.New(func() int64 { return 0 }))
	if err != nil {
		b.Fatal(err)
	}
	bs := bus.New(bus.Config{}, h.Local())
	const clients = 100_000
	for i := 0; i < clients; i++ {
		d := &discard{}
		d.c = h.NewClient(d)
		h.Register(d.c)
		if err := bs.Subscribe(bus.Subscription{Subscriber: d.c, Topic: "room", Quiet: true, Presence: presence}); err != nil {
			b.Fatal(err)
		}
	}
	s := h.shards[0]
	now := time.Now()
	s.step(now)
	slot := h.visitPeriod / time.Duration(s.wheel.Slots())
	b.ReportAllocs()
	b.ResetTimer()
	start, bytes := h.m.Pushes.Get(), h.m.BytesOut.Get()
	for i := 0; i < b.N; i++ {
		if change {
			bs.SetRemote("room", int64(i))
		}
		now = now.Add(slot)
		s.step(now)
	}
	b.StopTimer()
	pushes := h.m.Pushes.Get() - start
	if pushes > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pushes), "ns/push")
		b.ReportMetric(float64(h.m.BytesOut.Get()-bytes)/float64(pushes), "B/push")
	}
}

// BenchmarkTickPresenceOff: subscribed clients that did not ask for
// presence (the baseline).
func BenchmarkTickPresenceOff(b *testing.B) { benchTicks(b, false, false) }

// BenchmarkTickPresenceUnchanged: presence asked, count unchanged: no field.
func BenchmarkTickPresenceUnchanged(b *testing.B) { benchTicks(b, true, false) }

// BenchmarkTickPresenceChanged: presence asked, count changed before
// every tick: every tick carries "presence":{"room":N}.
func BenchmarkTickPresenceChanged(b *testing.B) { benchTicks(b, true, true) }

// heapPerClient is the live heap, per client, of 100k registered clients
// each subscribed to one topic, with or without presence.
func heapPerClient(b *testing.B, presence bool) float64 {
	h, err := New(Config{PushInterval: time.Second, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1},
		metrics.New(func() int64 { return 0 }))
	if err != nil {
		b.Fatal(err)
	}
	bs := bus.New(bus.Config{}, h.Local())
	const clients = 100_000
	ds := make([]*discard, clients)
	before := liveHeap()
	for i := range ds {
		d := &discard{}
		d.c = h.NewClient(d)
		h.Register(d.c)
		if err := bs.Subscribe(bus.Subscription{Subscriber: d.c, Topic: "room", Quiet: true, Presence: presence}); err != nil {
			b.Fatal(err)
		}
		ds[i] = d
	}
	h.shards[0].step(time.Now()) // into the wheel and the topic's lists
	after := liveHeap()
	runtime.KeepAlive(ds)
	runtime.KeepAlive(bs)
	return float64(after-before) / clients
}

func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkPresenceHeap reports the heap per subscribed client without
// and with presence (b.N is not used: one measurement each).
func BenchmarkPresenceHeap(b *testing.B) {
	off := heapPerClient(b, false)
	on := heapPerClient(b, true)
	b.ReportMetric(off, "B/client-off")
	b.ReportMetric(on, "B/client-on")
	b.ReportMetric(on-off, "B/client-presence")
}
