// Package memtrim gives the Go heap's free pages back to the operating
// system once a burst of allocation has ended, and lets the GC run less
// often while a burst is under way.
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
// The low GC percent that keeps idle connections cheap makes a connect ramp
// expensive: with GOGC 25 the GC runs each time the heap grows by a
// quarter: ~12 µs of CPU per connection at 13,000 connects/s, a fifth of a
// handshake's cost (6.5-7.4 µs with 50, 4.2 µs with 100; perf, wsbench
// connect). So while a burst is under way — at least MinAlloc bytes
// allocated within one period (a second by default), read every Poll —
// Run raises the GC percent to BurstGCPercent, and it puts the
// program's own percent back just before the trim (which collects the
// burst's garbage and returns the pages anyway) or after MaxBurst, when the
// allocation is steady load rather than a burst; the percent is raised again
// only after the next trim. The heap may reach (1 + BurstGCPercent/100)
// times its live size during a burst, not after it; but the connections'
// objects are left more scattered among the burst's garbage, and the trim
// cannot return a page that one of them is on: idle RSS per connection
// (wsbench idle, 5k to 19k) was 805-811 B with 25 throughout, 826-832 B
// with 50 during the ramps (the default) and 884-886 B with 100.
//
// # Concurrency contract
//
// Run is the package's one goroutine and owns its state (a controller);
// Due and the controller's methods are pure or touch only that state.
// Trim and SetGCPercent run on Run's goroutine.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults.
const (
	DefaultEvery          = time.Second
	DefaultPoll           = 100 * time.Millisecond
	DefaultMinAlloc       = 4 << 20
	DefaultGap            = 2 * time.Second
	DefaultBurstGCPercent = 50
	DefaultMaxBurst       = 30 * time.Second
)

// Config is zero for the defaults.
type Config struct {
	Every    time.Duration // the period the trim's and the burst's rules count allocation over (DefaultEvery)
	Poll     time.Duration // how often the counter is read (DefaultPoll; at most Every)
	MinAlloc uint64        // bytes allocated since the last trim that make one worth it, and within Every that make a burst (DefaultMinAlloc)
	Gap      time.Duration // at least this long between trims (DefaultGap)
	Trim     func()        // default debug.FreeOSMemory
	// BurstGCPercent is the GC percent during a burst (default
	// DefaultBurstGCPercent); negative: the GC percent is left alone. It
	// is applied only over a lower percent that is not off.
	BurstGCPercent int
	// MaxBurst is the longest the burst percent is kept (DefaultMaxBurst).
	MaxBurst time.Duration
	// SetGCPercent sets the GC percent and returns the previous one
	// (default debug.SetGCPercent).
	SetGCPercent func(int) int
}

func (c Config) withDefaults() Config {
	if c.Every <= 0 {
		c.Every = DefaultEvery
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	c.Poll = min(c.Poll, c.Every)
	if c.MinAlloc == 0 {
		c.MinAlloc = DefaultMinAlloc
	}
	if c.Gap <= 0 {
		c.Gap = DefaultGap
	}
	if c.Trim == nil {
		c.Trim = debug.FreeOSMemory
	}
	if c.BurstGCPercent == 0 {
		c.BurstGCPercent = DefaultBurstGCPercent
	}
	if c.MaxBurst <= 0 {
		c.MaxBurst = DefaultMaxBurst
	}
	if c.SetGCPercent == nil {
		c.SetGCPercent = debug.SetGCPercent
	}
	return c
}

// Due reports whether to trim now: sinceTrim bytes were allocated since
// the last trim, lastPeriod of them in the last period, and the last trim
// was idle ago.
func Due(c Config, sinceTrim, lastPeriod uint64, idle time.Duration) bool {
	return sinceTrim >= c.MinAlloc && lastPeriod < c.MinAlloc/16 && idle >= c.Gap
}

// controller is Run's state: it is given the allocation counter at each
// poll and trims and sets the GC percent as the package doc says.
type controller struct {
	c       Config
	atTrim  uint64    // counter after the last trim
	lastAt  time.Time // when the last trim (or the start) was
	periods []uint64  // the counter at the last Every/Poll+1 polls, oldest first
	saved   int       // the program's GC percent while raised
	raised  bool      // the burst percent is in force
	since   time.Time // when it was raised
	spent   bool      // raised since the last trim: not again before the next
	read    func() uint64
}

func newController(c Config, now time.Time, cur uint64, read func() uint64) *controller {
	n := int(c.Every/c.Poll) + 1
	k := &controller{c: c, atTrim: cur, lastAt: now, periods: make([]uint64, 0, n), read: read}
	k.periods = append(k.periods, cur)
	return k
}

// poll takes the counter's value cur at now.
func (k *controller) poll(now time.Time, cur uint64) {
	if len(k.periods) == cap(k.periods) {
		copy(k.periods, k.periods[1:])
		k.periods = k.periods[:len(k.periods)-1]
	}
	k.periods = append(k.periods, cur)
	lastPeriod := cur - k.periods[0] // over up to one Every
	full := len(k.periods) == cap(k.periods)
	switch {
	case !k.raised && !k.spent && k.c.BurstGCPercent > 0 && lastPeriod >= k.c.MinAlloc:
		if old := k.c.SetGCPercent(k.c.BurstGCPercent); old < 0 || old >= k.c.BurstGCPercent {
			k.c.SetGCPercent(old) // off, or higher already: not ours to lower
			k.spent = true
		} else {
			k.saved, k.raised, k.since, k.spent = old, true, now, true
		}
	case k.raised && now.Sub(k.since) >= k.c.MaxBurst:
		k.restore() // steady load, not a burst
	}
	if full && Due(k.c, cur-k.atTrim, lastPeriod, now.Sub(k.lastAt)) {
		k.restore()
		k.c.Trim()
		// What the trim itself allocated does not count.
		cur = k.read()
		k.atTrim, k.lastAt, k.spent = cur, now, false
		k.periods = append(k.periods[:0], cur)
	}
}

// restore puts the program's GC percent back if the burst percent is in
// force.
func (k *controller) restore() {
	if k.raised {
		k.c.SetGCPercent(k.saved)
		k.raised = false
	}
}

// Run trims and raises the GC percent as the package doc says until ctx
// ends; it leaves the program's GC percent in force when it returns.
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
	t := time.NewTicker(c.Poll)
	defer t.Stop()
	k := newController(c, time.Now(), read(), read)
	defer k.restore()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			k.poll(now, read())
		}
	}
}
