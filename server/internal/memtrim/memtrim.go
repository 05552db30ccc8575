// Package memtrim gives the Go heap's free pages back to the operating
// system once a burst of allocation has ended.
//
// A push server's memory is mostly its idle connections; what a connection
// costs in RSS is its live objects plus the runtime's share: the garbage of
// its handshake until the next GC, and freed pages the background scavenger
// returns only slowly (it keeps about 10 % over the GC's heap goal). After a
// connect ramp the server goes quiet and that share stays: 110-245 B per
// connection measured at 19,000 idle connections with GOGC 25
// (docs/profiling.md). Run watches the cumulative allocation counter: when
// at least MinAlloc bytes were allocated since the last trim and less than
// MinAlloc/16 in the last period (the burst is over), it runs Trim (default
// debug.FreeOSMemory: a GC, then every free page returned) — at most once
// per Gap. The push path allocates nothing, so steady pushing never trims;
// a connect ramp trims once, a period after it ends.
//
// # Concurrency contract
//
// Run is the package's one goroutine and owns its state; Due is a pure
// function. Trim runs on Run's goroutine.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults.
const (
	DefaultEvery    = time.Second
	DefaultMinAlloc = 4 << 20
	DefaultGap      = 2 * time.Second
)

// Config is zero for the defaults.
type Config struct {
	Every    time.Duration // how often the counter is read (DefaultEvery)
	MinAlloc uint64        // bytes allocated since the last trim that make one worth it (DefaultMinAlloc)
	Gap      time.Duration // at least this long between trims (DefaultGap)
	Trim     func()        // default debug.FreeOSMemory
}

func (c Config) withDefaults() Config {
	if c.Every <= 0 {
		c.Every = DefaultEvery
	}
	if c.MinAlloc == 0 {
		c.MinAlloc = DefaultMinAlloc
	}
	if c.Gap <= 0 {
		c.Gap = DefaultGap
	}
	if c.Trim == nil {
		c.Trim = debug.FreeOSMemory
	}
	return c
}

// Due reports whether to trim now: sinceTrim bytes were allocated since
// the last trim, lastPeriod of them in the last period, and the last trim
// was idle ago.
func Due(c Config, sinceTrim, lastPeriod uint64, idle time.Duration) bool {
	return sinceTrim >= c.MinAlloc && lastPeriod < c.MinAlloc/16 && idle >= c.Gap
}

// Run trims as Due says until ctx ends.
func Run(ctx context.Context, c Config) {
	c = c.withDefaults()
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	t := time.NewTicker(c.Every)
	defer t.Stop()
	atTrim := read()
	prev, last := atTrim, time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cur := read()
			if Due(c, cur-atTrim, cur-prev, now.Sub(last)) {
				c.Trim()
				// What the trim itself allocated does not count.
				cur, last = read(), time.Now()
				atTrim = cur
			}
			prev = cur
		}
	}
}
