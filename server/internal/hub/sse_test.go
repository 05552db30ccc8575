package hub

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"wspush/server/internal/bus"
	"wspush/server/internal/metrics"
)

// recConn records what an SSE client is sent.
type recConn struct {
	c  *Client
	mu sync.Mutex
	b  bytes.Buffer
}

func (r *recConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.b.Write(b)
	r.mu.Unlock()
	r.c.Written(len(b))
	return len(b), nil
}
func (r *recConn) Close() error { return nil }

func (r *recConn) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.String()
}

// TestSSEEvents: an SSE client gets ticks, pings, topic messages (with its
// positions in all its stream topics as the id) and broadcasts as events,
// and its close as a close event.
func TestSSEEvents(t *testing.T) {
	h, err := New(Config{PushInterval: 100 * time.Millisecond, PingInterval: 100 * time.Millisecond,
		IdleTimeout: 100 * time.Millisecond, Shards: 1}, metrics.New(func() int64 { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	bs := bus.New(bus.Config{}, h.Local())
	r := &recConn{}
	r.c = h.NewSSEClient(r)
	h.Register(r.c)
	for _, topic := range []string{"a", "b"} {
		if err := bs.Subscribe(bus.Subscription{Subscriber: r.c, Topic: topic}); err != nil {
			t.Fatal(err)
		}
	}
	s := h.shards[0]
	now := time.Now()
	s.step(now)
	if _, err := bs.Publish("a", []byte("{\"x\":\n1}")); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Broadcast([]byte(`"all"`)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ { // three push intervals, well over the idle timeout
		now = now.Add(10 * time.Millisecond)
		s.step(now)
	}
	out := r.String()
	_, ea := bs.Last("a")
	_, eb := bs.Last("b")
	for _, want := range []string{
		"event: subscribed\nid: a:" + ea + ":0\ndata: {\"type\":\"subscribed\",\"topic\":\"a\"",
		"event: msg\ndata: {\"type\":\"msg\",\"topic\":\"a\",\"seq\":1,",
		"\"data\":{\"x\":\ndata: 1}}\nid: a:" + ea + ":1,b:" + eb + ":0\n\n",
		"event: msg\ndata: {\"type\":\"msg\",\"topic\":\"\",\"seq\":1,",
		"event: tick\ndata: {\"type\":\"tick\",\"seq\":2,",
		"\n:\n\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stream lacks %q:\n%s", want, out)
		}
	}
	if r.c.Closing() {
		t.Fatal("the idle timeout closed an SSE client")
	}
	r.c.CloseWith(CloseShutdown)
	if out := r.String(); !strings.HasSuffix(out, "event: close\ndata: {\"type\":\"close\",\"code\":1001,\"reason\":\"server shutting down\"}\n\n") {
		t.Errorf("no close event at the end:\n%s", out[max(0, len(out)-200):])
	}
}

// TestSSEPushAllocs: ticks, heartbeats, topic messages and broadcasts to
// SSE clients allocate nothing per push once warm.
func TestSSEPushAllocs(t *testing.T) {
	h, err := New(Config{PushInterval: 10 * time.Millisecond, PingInterval: 10 * time.Millisecond, IdleTimeout: Disabled, Shards: 1},
		metrics.New(func() int64 { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	bs := bus.New(bus.Config{}, h.Local())
	for i := 0; i < 100; i++ {
		d := &discard{}
		d.c = h.NewSSEClient(d)
		h.Register(d.c)
		for _, topic := range []string{"prices", "news"} {
			if err := bs.Subscribe(bus.Subscription{Subscriber: d.c, Topic: topic, Quiet: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := h.shards[0]
	now := time.Now()
	s.step(now)
	ms := make([]*bus.Message, 0, 50)
	for i := 0; i < 50; i++ {
		m, err := bs.Publish("prices", []byte(`{"bid":1.0842}`))
		if err != nil {
			t.Fatal(err)
		}
		s.event(m) // encoded once per shard and message: not a per-push cost
		ms = append(ms, m)
	}
	s.mu.Lock()
	s.inbox = s.inbox[:0]
	s.queued = 0
	s.mu.Unlock()
	i := 0
	delivered := h.m.Delivered.Get()
	pushes := h.m.Pushes.Get()
	allocs := testing.AllocsPerRun(40, func() {
		s.handleMsg(ms[i%len(ms)])
		s.handleBroadcast(ms[i%len(ms)], nil) // as a broadcast too (no id)
		i++
		now = now.Add(10 * time.Millisecond)
		s.step(now)
	})
	if allocs != 0 && !raceOn {
		t.Errorf("%v allocations per round of 100 SSE clients", allocs)
	}
	if h.m.Delivered.Get() == delivered || h.m.Pushes.Get() == pushes {
		t.Fatal("nothing was pushed")
	}
}

// BenchmarkSSEFanout is BenchmarkFanout for SSE clients (each with two
// stream topics, so the id line lists two positions).
func BenchmarkSSEFanout(b *testing.B) {
	h, err := New(Config{PushInterval: Disabled, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 2},
		metrics.New(func() int64 { return 0 }))
	if err != nil {
		b.Fatal(err)
	}
	bs := bus.New(bus.Config{}, h.Local())
	const subs = 100_000
	for i := 0; i < subs; i++ {
		d := &discard{}
		d.c = h.NewSSEClient(d)
		h.Register(d.c)
		for _, topic := range []string{"prices", "news"} {
			if err := bs.Subscribe(bus.Subscription{Subscriber: d.c, Topic: topic, Quiet: true}); err != nil {
				b.Fatal(err)
			}
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

// BenchmarkSSETickPath is BenchmarkTickPath for SSE clients.
func BenchmarkSSETickPath(b *testing.B) {
	h, err := New(Config{PushInterval: time.Second, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1},
		metrics.New(func() int64 { return 0 }))
	if err != nil {
		b.Fatal(err)
	}
	const clients = 100_000
	for i := 0; i < clients; i++ {
		d := &discard{}
		d.c = h.NewSSEClient(d)
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
	if pushes := h.m.Pushes.Get() - start; pushes > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pushes), "ns/push")
	}
}

// TestSSENewEpoch: a message that starts a new epoch (a cluster bus's
// Apply) moves the SSE client's id to that epoch, after the notice.
func TestSSENewEpoch(t *testing.T) {
	h, err := New(Config{PushInterval: Disabled, Shards: 1}, metrics.New(func() int64 { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	bs := bus.New(bus.Config{}, h.Local())
	if err := bs.Apply("a", "e1", 1, 1, []byte("1")); err != nil {
		t.Fatal(err)
	}
	r := &recConn{}
	r.c = h.NewSSEClient(r)
	h.Register(r.c)
	if err := bs.Subscribe(bus.Subscription{Subscriber: r.c, Topic: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		epoch string
		seq   uint64
	}{{"e1", 2}, {"e2", 7}, {"e2", 8}} {
		if err := bs.Apply("a", m.epoch, m.seq, 1, []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	h.shards[0].step(time.Now())
	out := r.String()
	for _, want := range []string{"id: a:e1:1\n", "id: a:e1:2\n\n", "event: subscribed\ndata: {\"type\":\"subscribed\",\"topic\":\"a\",\"mode\":\"stream\",\"seq\":6,\"epoch\":\"e2\",\"history_gone\":true}\n\nevent: msg\n", "id: a:e2:7\n\n", "id: a:e2:8\n\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stream lacks %q:\n%s", want, out)
		}
	}
}

// TestSSELatestTick: a tick carrying latest-mode values (JSON that may
// hold line breaks) is an event with one data line per JSON line.
func TestSSELatestTick(t *testing.T) {
	h, err := New(Config{PushInterval: 100 * time.Millisecond, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1},
		metrics.New(func() int64 { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	bs := bus.New(bus.Config{}, h.Local())
	r := &recConn{}
	r.c = h.NewSSEClient(r)
	h.Register(r.c)
	if err := bs.Subscribe(bus.Subscription{Subscriber: r.c, Topic: "p", Latest: true}); err != nil {
		t.Fatal(err)
	}
	s := h.shards[0]
	now := time.Now()
	s.step(now)
	if _, err := bs.Publish("p", []byte("{\"v\":\n2}")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 12; i++ {
		now = now.Add(10 * time.Millisecond)
		s.step(now)
	}
	if out := r.String(); !strings.Contains(out, "event: tick\ndata: {\"type\":\"tick\",\"seq\":1,") ||
		!strings.Contains(out, ",\"topics\":{\"p\":{\"seq\":1,\"data\":{\"v\":\ndata: 2}}}}\n\n") {
		t.Errorf("no latest tick event:\n%s", out)
	}
}
