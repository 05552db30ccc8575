package hub

import (
	"errors"
	"testing"
	"time"

	"wspush/server/internal/metrics"
)

// directConn is a DirectConn whose socket takes take bytes of each write
// at once and buffers the rest; Write, like the gateway's, reports nothing
// through Written.
type directConn struct {
	take     int
	buffered int
	err      error
}

func (d *directConn) Write(b []byte) (int, error) { return len(b), nil }
func (d *directConn) Close() error                { return nil }
func (d *directConn) WriteDirect(b []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := min(d.take, len(b))
	d.buffered += len(b) - n
	return n, nil
}

// A client on a DirectConn counts as unsent only what the socket did not
// take at once, and that until the socket layer reports it through
// Written; a failed write leaves the count where it was.
func TestDirectConnUnsent(t *testing.T) {
	h := newHub(t, Config{PushInterval: time.Second})
	d := &directConn{take: 3}
	c := h.NewClient(d)
	h.Register(c)
	defer h.Unregister(c)
	if !c.Send([]byte{0x81, 5, 'h', 'e', 'l', 'l', 'o'}) {
		t.Fatal("Send failed")
	}
	if got := c.unsent.Load(); got != 4 {
		t.Fatalf("unsent after a write the socket took 3 of 7 bytes of: %d, want 4", got)
	}
	c.Written(d.buffered)
	if got := c.unsent.Load(); got != 0 {
		t.Fatalf("unsent after the rest was reported: %d, want 0", got)
	}
	d.take = 1 << 20
	for range 1000 {
		c.Send([]byte{0x81, 1, 'x'})
	}
	if got := c.unsent.Load(); got != 0 {
		t.Fatalf("unsent after writes the socket took whole: %d, want 0", got)
	}
	d.err = errors.New("write: broken")
	if c.Send([]byte{0x81, 1, 'x'}) {
		t.Fatal("Send reported a failed write as sent")
	}
	if got := c.unsent.Load(); got != 0 {
		t.Fatalf("unsent after a failed write: %d, want 0", got)
	}
}

// directDiscard is discard as a DirectConn: the socket takes everything.
type directDiscard struct{}

func (directDiscard) Write(b []byte) (int, error)       { return len(b), nil }
func (directDiscard) Close() error                      { return nil }
func (directDiscard) WriteDirect(b []byte) (int, error) { return len(b), nil }

// BenchmarkTickPathDirect is BenchmarkTickPath on DirectConns, the
// gateway's plain-TCP connections.
func BenchmarkTickPathDirect(b *testing.B) {
	h, err := New(Config{PushInterval: time.Second, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1},
		metrics.New(func() int64 { return 0 }))
	if err != nil {
		b.Fatal(err)
	}
	const clients = 100_000
	for range clients {
		h.Register(h.NewClient(directDiscard{}))
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
