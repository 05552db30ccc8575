package frameguard

import (
	"math"
	"time"
)

// The frame budget is a token bucket of FrameRate frames a second, at most
// FrameBurst deep, kept lazily so that a frame costs one decrement: the
// guard holds credit (frames it may take without looking at the clock) and
// reads the clock only when credit runs out. A refill then grants the
// frames earned since the last refill, at most FrameBurst. Over any window
// of T seconds a connection is allowed at most FrameBurst + T×FrameRate
// frames.

// unlimited is the credit of a guard with no frame cap.
const unlimited = math.MaxUint32

func (g *Guard) burst() int64 {
	if g.lim.FrameBurst > 0 {
		return int64(g.lim.FrameBurst)
	}
	return int64(g.lim.FrameRate)
}

// epoch is set once, when the package is initialised; the default clock
// counts monotonic time from it, so that a step of the wall clock does not
// starve or flood the buckets.
var epoch = time.Now()

func (g *Guard) now() int64 {
	if g.lim.Clock != nil {
		return g.lim.Clock()
	}
	return int64(time.Since(epoch))
}

// resetBudget fills the bucket of a new connection.
func (g *Guard) resetBudget() {
	if g.lim == nil || g.lim.FrameRate <= 0 {
		g.credit = unlimited
		return
	}
	g.credit = uint32(min(g.burst(), unlimited))
	g.last = g.now()
}

// refill grants the frames earned since the last refill; it reports false
// when there are none.
func (g *Guard) refill() bool {
	if g.lim.FrameRate <= 0 {
		g.credit = unlimited
		return true
	}
	interval := max(int64(time.Second)/int64(g.lim.FrameRate), 1)
	now := g.now()
	if now < g.last { // a clock that went back: start again from now
		g.last = now
	}
	earned := (now - g.last) / interval
	if earned <= 0 {
		return false
	}
	if b := g.burst(); earned >= b {
		earned, g.last = b, now
	} else {
		g.last += earned * interval // keep the fraction of a frame earned
	}
	g.credit = uint32(min(earned, unlimited))
	return true
}
