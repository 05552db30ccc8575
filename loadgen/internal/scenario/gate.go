package scenario

import (
	"context"
	"sync/atomic"
	"time"
)

// gate caps the dials in flight on the async path (-dialers): acquire
// takes a place, blocking only while all are taken; release gives one
// back and never blocks (it runs on pollers). A blocked acquire is woken
// once a quarter of the places are free again, not at every release, so
// that a full gate costs one wake-up per cap/4 dials, not one per dial.
// Safe for any number of goroutines.
type gate struct {
	n       atomic.Int64 // places taken
	waiting atomic.Int32 // acquires blocked (or about to block) on wake
	max     int64
	low     int64         // release at or below this wakes a waiter
	wake    chan struct{} // capacity 1
}

func newGate(n int) *gate {
	g := &gate{max: int64(max(n, 1)), wake: make(chan struct{}, 1)}
	g.low = g.max - max(g.max/4, 1)
	return g
}

// acquire takes a place; false when ctx ended first.
func (g *gate) acquire(ctx context.Context) bool {
	for {
		if n := g.n.Load(); n < g.max {
			if g.n.CompareAndSwap(n, n+1) {
				return true
			}
			continue
		}
		g.waiting.Add(1)
		// A release that lowered n before the add above saw no waiter;
		// one after it will see it (atomics are sequentially consistent).
		if g.n.Load() < g.max {
			g.waiting.Add(-1)
			continue
		}
		select {
		case <-g.wake:
			g.waiting.Add(-1)
		case <-ctx.Done():
			g.waiting.Add(-1)
			return false
		}
	}
}

// release gives a place back.
func (g *gate) release() {
	if n := g.n.Add(-1); n <= g.low && g.waiting.Load() > 0 {
		select {
		case g.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// drain waits until no place is taken, or until deadline; it reports
// whether the gate emptied.
func (g *gate) drain(deadline time.Time) bool {
	for g.n.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
