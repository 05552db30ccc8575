package hook

import (
	"sync"
	"time"
)

// Breaker states, the values of the wspush_hook_breaker_state gauge.
const (
	stateClosed   = 0 // calls go through
	stateHalfOpen = 1 // one probe call is in flight
	stateOpen     = 2 // calls fail at once with ErrUnavailable
)

// breaker is a circuit breaker: failures consecutive failures open it for
// cooldown; then one probe goes through (half-open), whose success closes
// it and whose failure opens it again.
type breaker struct {
	failures int           // read-only after New
	cooldown time.Duration // read-only after New

	mu       sync.Mutex // guards the fields below
	state    int
	run      int       // consecutive failures while closed
	openedAt time.Time // when it last opened
}

// isOpen reports, without changing anything, whether calls would be
// refused now (open and still cooling down, or a probe in flight).
func (b *breaker) isOpen(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case stateOpen:
		return now.Sub(b.openedAt) < b.cooldown
	case stateHalfOpen:
		return true
	}
	return false
}

// allow reports whether a call may go out now; after the cooldown the
// first caller becomes the probe.
func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case stateOpen:
		if now.Sub(b.openedAt) < b.cooldown {
			return false
		}
		b.state = stateHalfOpen
		return true
	case stateHalfOpen:
		return false
	}
	return true
}

// record counts a call's outcome.
func (b *breaker) record(ok bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case ok:
		b.state, b.run = stateClosed, 0
	case b.state == stateHalfOpen:
		b.state, b.openedAt = stateOpen, now
	case b.state == stateClosed:
		if b.run++; b.run >= b.failures {
			b.state, b.openedAt, b.run = stateOpen, now, 0
		}
	}
}

// current returns the state.
func (b *breaker) current() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
