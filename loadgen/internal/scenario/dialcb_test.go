package scenario

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wspush/loadgen/internal/fakews"
)

// runGoroutines counts the goroutines running the scenario's own code
// (ramp, dialers, redialer, reporter, retrier, Execute itself, a poller
// inside a callback).
func runGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "scenario.(*Run).") {
			n++
		}
	}
	return n
}

// A dial needs no goroutine, with or without -sources (the raw dial binds
// the source): with -dialers 1000 the run has a handful of goroutines of
// its own (a dialer pool would be a thousand), and every connection is
// counted once, in the connect histogram too, with its welcome.
func TestAsyncDialsNoGoroutineEach(t *testing.T) {
	// not parallel: it samples every goroutine's stack
	for _, sources := range []string{"", "127.0.0.2-127.0.0.4"} {
		t.Run("sources="+sources, func(t *testing.T) { asyncDialsNoGoroutineEach(t, sources) })
	}
}

func asyncDialsNoGoroutineEach(t *testing.T, sources string) {
	const conns = 400
	var most atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	res, _ := runWithHook(t, "connect", []fakews.Step{{Welcome: true}}, fakews.Options{}, conns,
		func(_ *fakews.Server, c *Config) {
			c.Dialers, c.Rate, c.Duration, c.Sources = 1000, 4000, time.Second, sources
		},
		func(*fakews.Server) {
			tk := time.NewTicker(10 * time.Millisecond)
			defer tk.Stop()
			end := time.After(900 * time.Millisecond)
			for {
				select {
				case <-ctx.Done():
					return
				case <-end:
					return
				case <-tk.C:
				}
				if n := int64(runGoroutines()); n > most.Load() {
					most.Store(n)
				}
			}
		})
	stop()
	if n := most.Load(); n == 0 || n > 20 {
		t.Errorf("the run had up to %d goroutines of its own, want 1..20", n)
	}
	eq(t, "established", res.ConnsEstablished, int64(conns))
	eq(t, "connect histogram", res.ConnectMS.Count, int64(conns))
	eq(t, "welcomes", res.Welcomes, int64(conns))
	if len(res.Errors) != 0 || len(res.Disconnects) != 0 {
		t.Errorf("errors %v disconnects %v, want none", res.Errors, res.Disconnects)
	}
}

// The in-flight cap: acquire blocks only when full, and a release that
// frees a quarter of the places wakes it.
func TestGate(t *testing.T) {
	t.Parallel()
	g := newGate(8)
	ctx := context.Background()
	for range 8 {
		if !g.acquire(ctx) {
			t.Fatal("acquire failed with places free")
		}
	}
	got := make(chan bool)
	go func() { got <- g.acquire(ctx) }()
	waitFor(t, func() bool { return g.waiting.Load() == 1 })
	g.release() // 7 taken: above the wake mark (6)
	if len(g.wake) != 0 {
		t.Fatal("woken at 7 of 8 taken, want at 6")
	}
	g.release() // 6 taken
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("acquire failed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not woken with 6 of 8 taken")
	}
	cctx, cancel := context.WithCancel(ctx)
	for g.n.Load() < 8 {
		g.acquire(ctx)
	}
	go func() { got <- g.acquire(cctx) }()
	cancel()
	if <-got {
		t.Fatal("acquire on a full gate returned true after ctx ended")
	}
	for range 8 {
		g.release()
	}
	if !g.drain(time.Now().Add(time.Second)) {
		t.Fatal("drain: places still taken")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// With -std-dial the dials are the standard library's, on the dialer
// goroutines, from the sources: the same counts.
func TestStdDialsWithSources(t *testing.T) {
	t.Parallel()
	const conns = 30
	res, _ := run(t, "connect", []fakews.Step{{Welcome: true}}, conns, func(c *Config) { c.Sources, c.StdDial = "127.0.0.1-127.0.0.2", true })
	eq(t, "established", res.ConnsEstablished, int64(conns))
	eq(t, "connect histogram", res.ConnectMS.Count, int64(conns))
	eq(t, "welcomes", res.Welcomes, int64(conns))
	if len(res.Errors) != 0 || len(res.Disconnects) != 0 {
		t.Errorf("errors %v disconnects %v, want none", res.Errors, res.Disconnects)
	}
}
