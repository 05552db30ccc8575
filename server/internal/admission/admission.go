// Package admission decides whether the server takes more work: a global
// accept-rate token bucket (Rate), a per-connection message-rate bucket of
// one word (Bucket) and a per-IP connection cap (PerIP).
//
// Both buckets are GCRA (the generic cell rate algorithm): the state is one
// "theoretical arrival time" in Unix nanoseconds; an event is allowed when
// it would not push that time more than burst intervals past now. This is a
// token bucket of rate r and depth burst, kept in one int64.
//
// # Concurrency contract
//
//   - Rate is safe for concurrent use (one atomic word, compare-and-swap);
//     it never blocks.
//   - Bucket is not synchronized: its owner (the goroutine handling one
//     connection's messages, which nbio runs one at a time) calls Allow.
//   - PerIP is safe for concurrent use; Acquire and Release hold one mutex
//     for a map operation.
package admission

import (
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"wspush/server/internal/tally"
)

// Limit is a rate and a burst, precomputed for GCRA.
type Limit struct {
	interval int64 // ns per event
	window   int64 // burst × interval: how far ahead the arrival time may run
}

// NewLimit returns a limit of perSec events a second with bursts of up to
// burst events (at least 1). perSec ≤ 0 returns the zero Limit, which
// allows everything.
func NewLimit(perSec float64, burst int) Limit {
	if perSec <= 0 {
		return Limit{}
	}
	iv := int64(math.Max(1, float64(time.Second)/perSec))
	return Limit{interval: iv, window: iv * int64(max(burst, 1))}
}

// Unlimited reports whether l allows everything.
func (l Limit) Unlimited() bool { return l.interval == 0 }

// Rate is a token bucket shared by many goroutines.
type Rate struct {
	l   Limit
	tat atomic.Int64
}

// NewRate returns a shared bucket for l.
func NewRate(l Limit) *Rate { return &Rate{l: l} }

// Allow takes one event at now (Unix ns). When the bucket is empty it
// returns false and how long until the next event would be allowed.
func (r *Rate) Allow(now int64) (bool, time.Duration) {
	if r.l.Unlimited() {
		return true, 0
	}
	for {
		old := r.tat.Load()
		next := max(old, now) + r.l.interval
		if ahead := next - now; ahead > r.l.window {
			return false, time.Duration(ahead - r.l.window)
		}
		if r.tat.CompareAndSwap(old, next) {
			return true, 0
		}
	}
}

// Bucket is one connection's message budget under a Limit kept elsewhere:
// one word of state. The zero Bucket is full.
type Bucket int64

// Allow takes one event at now (Unix ns) under l.
func (b *Bucket) Allow(now int64, l Limit) bool {
	if l.Unlimited() {
		return true
	}
	next := max(int64(*b), now) + l.interval
	if next-now > l.window {
		return false
	}
	*b = Bucket(next)
	return true
}

// PerIP caps the connections from one IP address. Addresses are counted
// as given: IPv4-mapped IPv6 addresses are unmapped, IPv6 addresses are
// counted one by one (not per /64).
type PerIP struct {
	max int32
	t   tally.Tally[netip.Addr]
}

// NewPerIP returns a cap of max connections per address; max ≤ 0 means no
// cap (Acquire always succeeds and nothing is counted).
func NewPerIP(max int) *PerIP {
	return &PerIP{max: int32(min(max, math.MaxInt32))}
}

// Acquire counts a connection from a, or reports false when a is at the
// cap. A zero (invalid) address is not counted and always succeeds.
func (p *PerIP) Acquire(a netip.Addr) bool {
	if p.max <= 0 || !a.IsValid() {
		return true
	}
	return p.t.Inc(a.Unmap(), p.max)
}

// Release uncounts a connection that Acquire counted.
func (p *PerIP) Release(a netip.Addr) {
	if p.max <= 0 || !a.IsValid() {
		return
	}
	p.t.Dec(a.Unmap())
}

// Count returns the connections counted for a.
func (p *PerIP) Count(a netip.Addr) int { return p.t.Count(a.Unmap()) }

// RemoteIP parses the address part of an "ip:port" remote address; the zero
// Addr when it cannot.
func RemoteIP(hostport string) netip.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
