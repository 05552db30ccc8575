package hub

import (
	"context"
	"testing"
	"time"

	"wspush/server/internal/bus"
	"wspush/server/wire"
)

// TestExpiryOnlyVisitsNoOneWithoutExpiry: with pushes, pings and the idle
// timeout off a visit can only close an expired token, so while no client
// has an expiry the wheel walks no client (it used to touch every client
// once a second: 1M visits/s at 1M idle clients); a client with an expiry
// is still closed with 1008 "token expired" within a visit period.
func TestExpiryOnlyVisitsNoOneWithoutExpiry(t *testing.T) {
	h := newHub(t, Config{PushInterval: Disabled, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1})
	start := time.Now()
	h.clock.Store(start.UnixNano())
	plain, _ := connect(h, false)
	steps(h, start, start.Add(3*time.Second), 10*time.Millisecond)
	if plain.visits != 0 {
		t.Fatalf("client without expiry visited %d times in 3 s, want 0", plain.visits)
	}

	tok, tf := connect(h, false)
	tok.SetExpiry(start.Add(3500 * time.Millisecond))
	if n := h.expiring.Load(); n != 1 {
		t.Fatalf("expiring = %d after SetExpiry, want 1", n)
	}
	steps(h, start.Add(3*time.Second), start.Add(5*time.Second), 10*time.Millisecond)
	frames, _ := tf.snapshot()
	if len(frames) == 0 {
		t.Fatal("client with an expired token got nothing, want a close frame")
	}
	last := frames[len(frames)-1]
	if last[0] != 0x80|wire.OpClose || string(last[4:]) != "token expired" {
		t.Fatalf("last frame %q, want close token expired", last)
	}
	h.Unregister(tok)
	if n := h.expiring.Load(); n != 0 {
		t.Fatalf("expiring = %d after unregister, want 0", n)
	}
	// set, cleared, set again, unregistered: counted once each way
	c, _ := connect(h, false)
	c.SetExpiry(start.Add(time.Hour))
	c.SetExpiry(time.Time{})
	c.SetExpiry(start.Add(time.Hour))
	c.SetExpiry(start.Add(2 * time.Hour))
	if n := h.expiring.Load(); n != 1 {
		t.Fatalf("expiring = %d, want 1", n)
	}
	h.Unregister(c)
	h.Unregister(c)
	if n := h.expiring.Load(); n != 0 {
		t.Fatalf("expiring = %d after unregister, want 0", n)
	}
}

// TestQuietHubDoesNotWakeForItsSlots: with nothing a slot could do the
// shards sleep (they woke every 10 ms slot: 0.5 cores for 60 idle
// processes of 2 shards each), so the hub's clock, refreshed at every
// wake-up, stands still; a broadcast still wakes them at once; a client
// with an expiry brings the slots back.
func TestQuietHubDoesNotWakeForItsSlots(t *testing.T) {
	h := newHub(t, Config{PushInterval: Disabled, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	_, f := connect(h, false)
	changes := func(d time.Duration) int {
		n, last := 0, h.Now()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
			if now := h.Now(); now != last {
				n, last = n+1, now
			}
		}
		return n
	}
	time.Sleep(50 * time.Millisecond) // past the first wake-ups
	if n := changes(400 * time.Millisecond); n > 1 {
		t.Fatalf("quiet hub woke %d times in 400 ms, want at most 1", n)
	}
	h.Local().Broadcast(&bus.Message{Seq: 1, Frame: []byte{0x81, 1, 'x'}})
	deadline := time.Now().Add(2 * time.Second)
	for frames, _ := f.snapshot(); len(frames) == 0; frames, _ = f.snapshot() {
		if time.Now().After(deadline) {
			t.Fatal("broadcast not written within 2 s")
		}
		time.Sleep(time.Millisecond)
	}
	c, _ := connect(h, false)
	c.SetExpiry(time.Now().Add(time.Hour))
	time.Sleep(1100 * time.Millisecond) // the sleeping shard's next wake-up
	if n := changes(300 * time.Millisecond); n < 5 {
		t.Fatalf("hub with an expiring client woke %d times in 300 ms, want every slot", n)
	}
}
