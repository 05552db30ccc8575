package hub

import (
	"testing"
	"time"
)

// Place says when each client's first tick is due, and that is when it
// is: for 400 clients placed at once (spread over the whole interval, as
// Register alone spreads them) and when keepalive cuts the interval into
// several visits (the first tick is then on the pushEvery-th visit).
func TestPlaceTellsWhenTheFirstTickIsDue(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       Config
		pushEvery uint32
	}{
		{"one visit per tick", Config{PushInterval: time.Second, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 2}, 1},
		{"four visits per tick", Config{PushInterval: time.Second, PingInterval: 300 * time.Millisecond, IdleTimeout: Disabled, Shards: 2}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, tc.cfg)
			if h.pushEvery != tc.pushEvery {
				t.Fatalf("pushEvery %d, want %d", h.pushEvery, tc.pushEvery)
			}
			start := time.Now()
			var conns []*fakeConn
			var promised []int64
			for range 400 {
				f := &fakeConn{}
				c := h.NewClient(f)
				f.c = c
				due := h.Place(c)
				if due <= start.UnixNano() || due > time.Now().Add(time.Second).UnixNano() {
					t.Fatalf("first tick promised %v after the start, want within (0, 1s]", time.Duration(due-start.UnixNano()))
				}
				h.Register(c)
				conns, promised = append(conns, f), append(promised, due)
			}
			steps(h, start, start.Add(2500*time.Millisecond), 5*time.Millisecond)
			perDecile := map[int64]int{}
			for i, f := range conns {
				frames, _ := f.snapshot()
				ts := ticks(t, frames)
				if len(ts) < 2 || ts[0].Seq != 1 || ts[0].Due != promised[i] || ts[1].Due != promised[i]+int64(time.Second) {
					t.Fatalf("client %d: ticks %+v, want the first due at %d as promised, the next a second later", i, ts, promised[i])
				}
				perDecile[(promised[i]-start.UnixNano())/int64(100*time.Millisecond)]++
			}
			for decile := int64(0); decile < 10; decile++ {
				if n := perDecile[decile]; n < 30 || n > 50 {
					t.Fatalf("first ticks per 100ms: %v; want about 40 each", perDecile)
				}
			}
		})
	}
}

// A client its shard adds only after the visit Place planned has passed
// (the shard was late, or the slot came due between Place and Register)
// gets the missed visits at once, with their own due times: its first tick
// is still due when promised, and the ticks stay one interval apart.
func TestLateAddCatchesUpThePromisedTick(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"one visit per tick", Config{PushInterval: time.Second, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1}},
		{"four visits per tick", Config{PushInterval: time.Second, PingInterval: 300 * time.Millisecond, IdleTimeout: Disabled, Shards: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, tc.cfg)
			start := time.Now()
			f := &fakeConn{}
			c := h.NewClient(f)
			f.c = c
			due := h.Place(c)
			late := time.Unix(0, due).Add(300 * time.Millisecond)
			steps(h, start, late, 5*time.Millisecond) // the shard passes the planned visits
			h.Register(c)
			h.shards[0].step(late) // adds c
			frames, _ := f.snapshot()
			if ts := ticks(t, frames); len(ts) != 1 || ts[0].Seq != 1 || ts[0].Due != due {
				t.Fatalf("right after the late add: ticks %+v, want tick 1 due at the promised %d", ts, due)
			}
			steps(h, late, time.Unix(0, due).Add(1010*time.Millisecond), 5*time.Millisecond)
			frames, _ = f.snapshot()
			if ts := ticks(t, frames); len(ts) != 2 || ts[1].Seq != 2 || ts[1].Due != due+int64(time.Second) {
				t.Fatalf("a second later: ticks %+v, want tick 2 due one second after tick 1", ts)
			}
		})
	}
}
