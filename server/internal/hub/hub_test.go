package hub

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"wspush/server/internal/bus"
	"wspush/server/internal/metrics"
	"wspush/server/wire"
)

// fakeConn records frames. With stuck set, nothing it is given is reported
// as taken by the socket, as for a client that stopped reading.
type fakeConn struct {
	mu     sync.Mutex
	c      *Client
	frames [][]byte
	bytes  int
	closed bool
	stuck  bool
}

func (f *fakeConn) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames = append(f.frames, append([]byte(nil), b...))
	f.bytes += len(b)
	if !f.stuck && f.c != nil {
		f.c.Written(len(b))
	}
	return len(b), nil
}

func (f *fakeConn) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeConn) snapshot() ([][]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.frames...), f.closed
}

func newHub(t testing.TB, cfg Config) *Hub {
	t.Helper()
	h, err := New(cfg, metrics.New(func() int64 { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func connect(h *Hub, stuck bool) (*Client, *fakeConn) {
	f := &fakeConn{stuck: stuck}
	c := h.NewClient(f)
	f.c = c
	h.Register(c)
	return c, f
}

// steps drives every shard from start to end in increments of d.
func steps(h *Hub, start, end time.Time, d time.Duration) {
	for now := start; !now.After(end); now = now.Add(d) {
		for _, s := range h.shards {
			s.step(now)
		}
	}
}

func ticks(t *testing.T, frames [][]byte) []wire.ServerMsg {
	t.Helper()
	var out []wire.ServerMsg
	for _, f := range frames {
		if f[0] != 0x80|wire.OpText {
			continue
		}
		payload := f[2:]
		if f[1] == 126 {
			payload = f[4:]
		}
		var m wire.ServerMsg
		if err := wire.ParseServer(payload, &m); err != nil {
			t.Fatalf("frame %q: %v", f, err)
		}
		out = append(out, m)
	}
	return out
}

func TestScheduleCutsThePushIntervalForKeepalive(t *testing.T) {
	for _, c := range []struct {
		push, ping, idle time.Duration
		period           time.Duration
		every            uint32
	}{
		{5 * time.Second, 30 * time.Second, 75 * time.Second, 5 * time.Second, 1},
		{60 * time.Second, 30 * time.Second, 75 * time.Second, 20 * time.Second, 3},
		{Disabled, 30 * time.Second, 75 * time.Second, 25 * time.Second, 0},
		{Disabled, Disabled, Disabled, time.Second, 0},
		{10 * time.Second, Disabled, Disabled, 10 * time.Second, 1},
	} {
		h := newHub(t, Config{PushInterval: c.push, PingInterval: c.ping, IdleTimeout: c.idle})
		wantPing := uint32(0)
		if c.ping != Disabled {
			wantPing = uint32(max(1, c.ping/c.period))
		}
		if h.pingEvery != wantPing || (c.ping == 30*time.Second && time.Duration(h.pingEvery)*h.visitPeriod > 30*time.Second) {
			t.Errorf("push %v ping %v: a ping every %d visits of %v", c.push, c.ping, h.pingEvery, h.visitPeriod)
		}
		if h.visitPeriod != c.period || h.pushEvery != c.every {
			t.Errorf("push %v ping %v idle %v: period %v every %d, want %v %d", c.push, c.ping, c.idle, h.visitPeriod, h.pushEvery, c.period, c.every)
		}
	}
	if _, err := New(Config{PushInterval: time.Millisecond}, metrics.New(func() int64 { return 0 })); err == nil {
		t.Error("a 1ms push interval was accepted")
	}
}

func TestTicksAreContiguousAndSpreadOverTheInterval(t *testing.T) {
	h := newHub(t, Config{PushInterval: time.Second, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 2})
	start := time.Now()
	var conns []*fakeConn
	for i := 0; i < 400; i++ {
		_, f := connect(h, false)
		conns = append(conns, f)
	}
	steps(h, start, start.Add(3500*time.Millisecond), 5*time.Millisecond)
	firstDue := map[int64]int{}
	for i, f := range conns {
		frames, _ := f.snapshot()
		ts := ticks(t, frames)
		if len(ts) < 3 || len(ts) > 4 {
			t.Fatalf("client %d got %d ticks in 3.5 periods", i, len(ts))
		}
		for j, m := range ts {
			if m.Seq != uint64(j+1) {
				t.Fatalf("client %d tick %d has seq %d", i, j, m.Seq)
			}
			if j > 0 && m.Due-ts[j-1].Due != int64(time.Second) {
				t.Fatalf("client %d: ticks %v apart", i, time.Duration(m.Due-ts[j-1].Due))
			}
		}
		firstDue[(ts[0].Due-start.UnixNano())/int64(100*time.Millisecond)]++
	}
	// Clients that all arrived at once are spread over the whole second:
	// each tenth of it holds about a tenth of them.
	for decile := int64(0); decile < 10; decile++ {
		if n := firstDue[decile]; n < 30 || n > 50 {
			t.Fatalf("first ticks per 100ms: %v; want about 40 each", firstDue)
		}
	}
}

func TestSlowConsumerGetsCloseFrameAndIsClosedAfterGrace(t *testing.T) {
	h := newHub(t, Config{PushInterval: 100 * time.Millisecond, PushText: strings.Repeat("x", 1000),
		PingInterval: Disabled, IdleTimeout: Disabled, MaxUnsent: 8 << 10, Shards: 1, CloseGrace: 500 * time.Millisecond})
	start := time.Now()
	slow, sf := connect(h, true)
	_, ff := connect(h, false)
	steps(h, start, start.Add(3*time.Second), 10*time.Millisecond)

	frames, closed := sf.snapshot()
	last := frames[len(frames)-1]
	if last[0] != 0x80|wire.OpClose || int(last[2])<<8|int(last[3]) != int(wire.CloseSlowConsumer) {
		t.Fatalf("slow client's last frame %q, want close 4008", last)
	}
	if !closed {
		t.Fatal("slow client's socket not closed after the grace period")
	}
	if sf.bytes > 8<<10+200 {
		t.Fatalf("slow client was given %d bytes, over the 8 KiB cap", sf.bytes)
	}
	if r := slow.reason.Load(); r == nil || *r != metrics.ClosedSlow {
		t.Fatalf("reason %v", r)
	}
	fast, _ := ff.snapshot()
	if n := len(ticks(t, fast)); n < 29 {
		t.Fatalf("the reading client got %d ticks, want every one (29+)", n)
	}
}

func TestIdleClientIsClosedAndPingsAreSent(t *testing.T) {
	h := newHub(t, Config{PushInterval: Disabled, PingInterval: 100 * time.Millisecond, IdleTimeout: 450 * time.Millisecond, Shards: 1})
	start := time.Now()
	h.clock.Store(start.UnixNano())
	idle, idf := connect(h, false)
	live, lf := connect(h, false)
	for now := start; now.Before(start.Add(2 * time.Second)); now = now.Add(10 * time.Millisecond) {
		h.shards[0].step(now)
		live.Touch() // the live client answers every ping
	}
	_ = idle
	frames, _ := idf.snapshot()
	last := frames[len(frames)-1]
	if last[0] != 0x80|wire.OpClose || string(last[4:]) != "idle timeout" {
		t.Fatalf("idle client's last frame %q, want close idle timeout", last)
	}
	lframes, lclosed := lf.snapshot()
	pings := 0
	for _, f := range lframes {
		if f[0] == 0x80|wire.OpPing {
			pings++
		}
	}
	if lclosed || pings < 10 {
		t.Fatalf("live client: closed %v after %d pings; want open with ~19 pings", lclosed, pings)
	}
}

func TestDrainClosesAtTheRate(t *testing.T) {
	h := newHub(t, Config{PushInterval: time.Second, Shards: 2})
	var conns []*fakeConn
	for i := 0; i < 100; i++ {
		c, f := connect(h, false)
		f.c = c
		conns = append(conns, f)
	}
	start := time.Now()
	for _, s := range h.shards {
		s.step(start) // admit the clients
	}
	done := make(chan error, 1)
	go func() { done <- h.Drain(context.Background(), 200) }()
	eventually(t, func() bool { return h.drain.Load() != nil })
	// 200/s over 2 shards: after 0.25 s about 50 clients are closed, not all.
	steps(h, start, start.Add(250*time.Millisecond), 10*time.Millisecond)
	n := closedWith(conns, wire.CloseGoingAway)
	if n < 40 || n > 60 {
		t.Fatalf("%d of 100 closed after 0.25s at 200/s", n)
	}
	steps(h, start.Add(260*time.Millisecond), start.Add(700*time.Millisecond), 10*time.Millisecond)
	if n := closedWith(conns, wire.CloseGoingAway); n != 100 {
		t.Fatalf("%d of 100 closed after 0.7s", n)
	}
	for _, f := range conns {
		h.Unregister(f.c) // the sockets close
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func closedWith(conns []*fakeConn, code uint16) int {
	n := 0
	for _, f := range conns {
		frames, _ := f.snapshot()
		for _, fr := range frames {
			if fr[0] == 0x80|wire.OpClose && uint16(fr[2])<<8|uint16(fr[3]) == code {
				n++
			}
		}
	}
	return n
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestUnregisterRemovesFromTheWheel(t *testing.T) {
	h := newHub(t, Config{PushInterval: 100 * time.Millisecond, Shards: 1})
	start := time.Now()
	c, f := connect(h, false)
	h.shards[0].step(start)
	if h.shards[0].wheel.Len() != 1 {
		t.Fatal("client not in the wheel")
	}
	h.Unregister(c)
	h.Unregister(c) // twice is harmless
	h.shards[0].step(start.Add(time.Millisecond))
	if h.shards[0].wheel.Len() != 0 || h.Len() != 0 {
		t.Fatalf("wheel %d clients %d after unregister", h.shards[0].wheel.Len(), h.Len())
	}
	steps(h, start, start.Add(time.Second), 10*time.Millisecond)
	if frames, _ := f.snapshot(); len(frames) != 0 {
		t.Fatalf("%d frames written after unregister", len(frames))
	}
}

func TestClientSubsByName(t *testing.T) {
	h := newHub(t, Config{PushInterval: Disabled, PingInterval: Disabled, IdleTimeout: Disabled})
	bs := bus.New(bus.Config{}, h.Local())
	c, _ := connect(h, false)
	for _, name := range []string{"a", "b", "c"} {
		if err := bs.Subscribe(bus.Subscription{Subscriber: c, Topic: name, Latest: name == "b"}); err != nil {
			t.Fatal(err)
		}
	}
	if l := c.subList(); find(l, "b") < 0 || l[find(l, "b")].t.Name() != "b" || !l[find(l, "b")].latest {
		t.Fatalf("find(b) = %d", find(l, "b"))
	}
	unsub := func(name string) error { return bs.Unsubscribe(bus.Subscription{Subscriber: c, Topic: name}) }
	if err := unsub("a"); err != nil {
		t.Fatal(err)
	}
	if err := unsub("zz"); !errors.Is(err, bus.ErrNotSubscribed) { // not subscribed: no change
		t.Fatalf("unsubscribe from zz: %v", err)
	}
	if c.Subscribed("a") {
		t.Fatal("a still subscribed after its unsubscribe")
	}
	for _, name := range []string{"b", "c"} {
		if !c.Subscribed(name) {
			t.Fatalf("%s lost by unsubscribing a", name)
		}
	}
	if c.Subs() != 2 {
		t.Fatalf("%d subscriptions, want 2", c.Subs())
	}
	got := c.Topics()
	for _, name := range got {
		if err := unsub(name); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || c.Subs() != 0 {
		t.Fatalf("Topics: %d, then %d left", len(got), c.Subs())
	}
	if unsafe.Sizeof(Client{}) > 128 {
		t.Errorf("Client is %d bytes; an idle connection's budget is 128", unsafe.Sizeof(Client{}))
	}
}

// A message that starts a new epoch carries a notice: a plain client gets
// both frames in one write, a compressed one gets them one after the other.
func TestNoticeAndMessageInOneWrite(t *testing.T) {
	h := newHub(t, Config{PushInterval: Disabled, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1})
	bs := bus.New(bus.Config{}, h.Local())
	plain, pf := connect(h, false)
	deflate, df := connect(h, false)
	deflate.SetCompress()
	now := time.Now()
	for _, c := range []*Client{plain, deflate} {
		if err := bs.Subscribe(bus.Subscription{Subscriber: c, Topic: "feed", Quiet: true}); err != nil {
			t.Fatal(err)
		}
	}
	steps(h, now, now, time.Millisecond)
	pf.mu.Lock()
	before := len(pf.frames)
	pf.mu.Unlock()
	dfBefore := len(df.frames)
	// As a cluster bus does: seq 1 of an epoch this node has not seen.
	if err := bs.Apply("feed", "epoch-b", 1, now.UnixNano(), []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	steps(h, now, now, time.Millisecond)
	got, _ := pf.snapshot()
	if len(got) != before+1 {
		t.Fatalf("plain client: %d writes for notice + message, want 1", len(got)-before)
	}
	w := string(got[before])
	if i, j := strings.Index(w, `"subscribed"`), strings.Index(w, `"msg"`); i < 0 || j < 0 || i > j {
		t.Fatalf("plain client's write %q: want the subscribed notice, then the msg", w)
	}
	if !strings.Contains(w, "epoch-b") {
		t.Fatalf("notice without the new epoch: %q", w)
	}
	dgot, _ := df.snapshot()
	if len(dgot) != dfBefore+2 {
		t.Fatalf("compressed client: %d writes, want 2 (notice, then its own frame)", len(dgot)-dfBefore)
	}
}
