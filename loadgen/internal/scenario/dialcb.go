package scenario

// The async dial path (the default, with or without -sources; not with
// -std-dial): no dialer goroutines. The ramp and
// the redialer start each dial (issue → engine.DialAsync) and take a
// place in the gate first, blocking only while -dialers dials are in
// flight; the engine reports the outcome through onDial on the goroutine
// that learned it (a poller, nbio's executor, the engine's sweeper, or
// the issuer for a socket that could not be made), which does the
// post-dial work (dialed) there and gives the place back. Nothing on that
// path blocks: counters and histograms are behind short mutexes
// (connMu, the shard's), retries go to the retrier's queue without
// waiting (retryLater), the subscription is a non-blocking write.

import (
	"context"
	"time"

	"wspush/loadgen/internal/engine"
)

// A dial's tag (engine.DialAsync) carries its retryItem's flags.
const (
	tagReconnect uint32 = 1 << iota
	tagRetry
)

// issue starts a dial of it.slot; false when ctx ended while the gate was
// full.
func (r *Run) issue(ctx context.Context, it retryItem) bool {
	if !r.gate.acquire(ctx) {
		return false
	}
	var tag uint32
	if it.reconnect {
		tag |= tagReconnect
	}
	if it.retry {
		tag |= tagRetry
		r.retries.Add(1)
	}
	r.eng.DialAsync(r.target(it.slot), it.slot, tag)
	return true
}

// onDial is the engine's report of a dial that issue started.
func (r *Run) onDial(c *engine.Conn, slot, tag uint32, took time.Duration, err error) {
	it := retryItem{slot: slot, reconnect: tag&tagReconnect != 0, retry: tag&tagRetry != 0}
	r.dialed(r.dialCtx, it, c, took, err)
	r.gate.release()
}

// redialer starts the dials of the slots that churn and the retrier hand
// back, until ctx ends.
func (r *Run) redialer(ctx context.Context) {
	for {
		var it retryItem
		select {
		case <-ctx.Done():
			return
		case it.slot = <-r.redial:
			it.reconnect = true
		case it = <-r.retryOut:
		}
		if !r.issue(ctx, it) {
			return
		}
	}
}
