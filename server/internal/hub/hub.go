// Package hub owns wspush's connected clients: it spreads them over
// shards, one per core, and each shard's goroutine drives a timing wheel
// that pushes ticks, sends keepalive pings, closes idle clients and drops
// slow ones. It knows nothing of nbio: a client's socket is anything with
// Write and Close.
//
// # Concurrency contract
//
//   - Place, Register, Unregister, Client.Send, Client.CloseWith and
//     Client.Touch may be called from any goroutine (nbio's pollers and
//     executors) and never block for longer than a short mutex hold: a
//     shard's mutex guards only its pending lists and its slot planner, and
//     each call appends one element to one list or counts one slot.
//   - Each shard's goroutine owns its wheel, its closing queue, its scratch
//     buffer and the wheel-side fields of its clients (pos, seq, visits,
//     latest). It takes pending additions, removals and closes under the
//     mutex once per wake-up and applies them alone.
//   - Writes to one client may come from its shard (ticks, pings) and from
//     the goroutine handling its messages (replies) at the same time: each
//     is one Write call of one whole frame, and the socket serializes them.
//   - Subscriptions reach the hub only through the bus.Local that Local
//     returns, which the bus calls with the topic's lock held (topics.go).
//     Each is one record (sub). The client's list of them is copied on
//     write, changed only there, and may be read from any goroutine
//     (Client.Subscribed, Subs, Topics); the shard's lists and each
//     record's position and sent seq are owned by the shard goroutine.
//   - Pending lists are bounded by the number of clients: a client is added
//     once, removed once and queued for closing at most once.
//   - Run runs the shard goroutines until its context is done and returns
//     once they have exited (the lifecycle every wspush component shares:
//     acquire in New, run until the context ends, release, return).
package hub

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"wspush/server/internal/bus"
	"wspush/server/internal/metrics"
	"wspush/server/internal/wheel"
)

// Config is the hub's configuration; the zero value of each field means its
// default.
type Config struct {
	// PushInterval is the period of a client's ticks (default 5s); Disabled
	// turns ticks off.
	PushInterval time.Duration
	// PushText, when set, is carried by every tick as "text".
	PushText string
	// PingInterval is how often a client is sent a WebSocket ping (default
	// 30s); Disabled turns pings off.
	PingInterval time.Duration
	// IdleTimeout closes a client from which nothing arrived for this long
	// (default 75s); Disabled turns it off.
	IdleTimeout time.Duration
	// MaxUnsent caps a client's bytes written but not yet taken by its
	// socket (default 256 KiB). Over it the client is dropped as slow.
	MaxUnsent int
	// Shards is the number of wheel shards (default GOMAXPROCS).
	Shards int
	// Resolution is the length of a wheel slot (default 10ms).
	Resolution time.Duration
	// CloseGrace is how long a client that was sent a close frame may take to
	// close before its socket is closed (default 1s).
	CloseGrace time.Duration
	// MaxQueue caps the messages waiting in a shard's inbox (default
	// 4096); over it publishes are refused as overloaded.
	MaxQueue int
}

// Disabled, as a duration in Config, turns that feature off: wspush's one
// scheme for every Config is that 0 means the default and a negative value
// means off, and withDefaults turns any negative duration into Disabled.
const Disabled = time.Duration(-1)

// MinInterval is the shortest push interval, ping interval or idle timeout
// (and, for the server's flags, handshake timeout): the wheel's resolution.
const MinInterval = 10 * time.Millisecond

// Defaults.
const (
	DefaultPushInterval = 5 * time.Second
	DefaultPingInterval = 30 * time.Second
	DefaultIdleTimeout  = 75 * time.Second
	DefaultMaxUnsent    = 256 << 10
	DefaultResolution   = 10 * time.Millisecond
	DefaultCloseGrace   = time.Second
	DefaultMaxQueue     = 4096
)

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.PushInterval, DefaultPushInterval)
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	for _, d := range []*time.Duration{&c.PushInterval, &c.PingInterval, &c.IdleTimeout} {
		if *d < 0 {
			*d = Disabled
		}
	}
	def(&c.Resolution, DefaultResolution)
	def(&c.CloseGrace, DefaultCloseGrace)
	if c.MaxUnsent <= 0 {
		c.MaxUnsent = DefaultMaxUnsent
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.Shards <= 0 {
		c.Shards = runtime.GOMAXPROCS(0)
	}
	return c
}

// Hub is the set of connected clients. Create it with New.
type Hub struct {
	cfg     Config
	m       *metrics.Metrics
	shards  []*shard
	next    atomic.Uint32 // round-robin shard choice
	ids     atomic.Uint64
	clients atomic.Int64
	clock   atomic.Int64 // Unix ns, refreshed by the shards each wake-up

	// visit schedule, derived from cfg
	visitPeriod time.Duration
	pushEvery   uint32 // push on every pushEvery-th visit; 0 = never
	pingEvery   uint32 // ping on every pingEvery-th visit; 0 = never
	// expiryOnly: no pushes, pings or idle timeout, so a visit can only
	// find an expired token. While no client has an expiry (quiet) the
	// shards neither walk their slots nor wake for them (shard.run):
	// they used to wake every 10 ms slot and touch every client once a
	// second for nothing, 0.5 cores for 60 idle processes.
	expiryOnly bool
	expiring   atomic.Int64 // clients whose expires is not 0 (SetExpiry, Unregister)

	fans sync.Map // *bus.Topic → *fanout; see topics.go

	stopOnce sync.Once
	stop     chan struct{}
	drain    atomic.Pointer[drainOrder]
}

// New returns a hub; m receives its figures.
func New(cfg Config, m *metrics.Metrics) (*Hub, error) {
	cfg = cfg.withDefaults()
	h := &Hub{cfg: cfg, m: m, stop: make(chan struct{})}
	if err := h.schedule(); err != nil {
		return nil, err
	}
	now := time.Now()
	h.clock.Store(now.UnixNano())
	slots := int(h.visitPeriod / cfg.Resolution)
	slots = max(1, min(slots, 1<<16))
	for i := 0; i < cfg.Shards; i++ {
		// Offset the shards' phases so that they do not wake together.
		start := now.Add(time.Duration(i) * h.visitPeriod / time.Duration(slots) / time.Duration(cfg.Shards))
		w, err := wheel.New[*Client](h.visitPeriod, slots, start)
		if err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		h.shards = append(h.shards, &shard{h: h, idx: i, wheel: w, plan: wheel.NewPlanner(slots), buf: make([]byte, 0, 512),
			wake: make(chan struct{}, 1), streams: map[*bus.Topic][]*sub{}})
	}
	return h, nil
}

// schedule picks the wheel's period: the push interval, cut into as many
// visits as keepalive needs to be checked often enough.
func (h *Hub) schedule() error {
	c := h.cfg
	for _, iv := range []struct {
		name string
		d    time.Duration
	}{{"push interval", c.PushInterval}, {"ping interval", c.PingInterval}, {"idle timeout", c.IdleTimeout}} {
		if iv.d != Disabled && iv.d < MinInterval {
			return fmt.Errorf("hub: %s %v is below %v", iv.name, iv.d, MinInterval)
		}
	}
	if c.Resolution < time.Millisecond {
		return fmt.Errorf("hub: resolution %v is below 1ms", c.Resolution)
	}
	keep := keepaliveEvery(c)
	switch {
	case c.PushInterval == Disabled && keep == 0:
		h.visitPeriod = time.Second
		h.expiryOnly = true
	case c.PushInterval == Disabled:
		h.visitPeriod = keep
	default:
		n := int64(1)
		if keep > 0 && c.PushInterval > keep {
			n = int64((c.PushInterval + keep - 1) / keep)
		}
		h.visitPeriod = c.PushInterval / time.Duration(n)
		h.pushEvery = uint32(n)
	}
	if c.PingInterval != Disabled {
		// Pings count visits, so that wake-up jitter never skips one; they
		// come at most a ping interval apart.
		h.pingEvery = uint32(max(1, c.PingInterval/h.visitPeriod))
	}
	if h.visitPeriod < c.Resolution {
		h.cfg.Resolution = h.visitPeriod
	}
	return nil
}

// keepaliveEvery is how often keepalive must be checked: at least every
// third of the idle timeout, and no less often than pings are due; 0 when
// both are off.
func keepaliveEvery(c Config) time.Duration {
	keep := time.Duration(0)
	if c.PingInterval != Disabled {
		keep = c.PingInterval
	}
	if c.IdleTimeout != Disabled && (keep == 0 || c.IdleTimeout/3 < keep) {
		keep = c.IdleTimeout / 3
	}
	return keep
}

// quiet reports whether no wheel slot has anything to do: ticks, pings and
// the idle timeout are off and no client has a token expiry.
func (h *Hub) quiet() bool { return h.expiryOnly && h.expiring.Load() == 0 && h.drain.Load() == nil }

// PushInterval returns the tick period, 0 when ticks are off.
func (h *Hub) PushInterval() time.Duration {
	if h.pushEvery == 0 {
		return 0
	}
	return h.cfg.PushInterval
}

// Len returns the number of registered clients.
func (h *Hub) Len() int64 { return h.clients.Load() }

// Now returns the hub's coarse clock (refreshed every slot) in Unix ns.
func (h *Hub) Now() int64 { return h.clock.Load() }

// NewClient returns a client for conn with a fresh id; it is not yet
// registered, so nothing but the caller writes to it.
func (h *Hub) NewClient(conn Conn) *Client {
	c := &Client{conn: conn, h: h, id: h.ids.Add(1)}
	c.lastRead.Store(h.Now())
	return c
}

// InitClient readies c, a zero Client the caller embeds in its own
// per-connection record (one allocation for both), as NewClient would.
func (h *Hub) InitClient(c *Client, conn Conn) {
	c.conn, c.h, c.id = conn, h, h.ids.Add(1)
	c.lastRead.Store(h.Now())
}

// Place chooses c's shard and wheel slot, balanced as the wheel's Add
// would, and returns when its first tick is due (Unix ns; 0 when ticks are
// off): the first visit of its slot after now, or the pushEvery-th when
// keepalive cuts the interval into several visits. That is within one push
// interval, spread over it for balance, never sooner because of when c
// arrived; when a push interval is several visits, clients placed
// together also get different phases among them (Client.phase). The
// gateway calls Place before it writes the welcome, which
// carries that time, then Register; Register places a client not placed.
// The shard keeps the promise: a client it adds after its slot's planned
// visit passed gets the visits it missed at once, each with its own due
// time (shard.catchUp), like any late tick.
func (h *Hub) Place(c *Client) int64 {
	s := h.shards[int(h.next.Add(1))%len(h.shards)]
	s.mu.Lock()
	slot := s.plan.Take()
	s.placed++
	phase := s.placed % min(max(h.pushEvery, 1), 1<<16-1)
	s.mu.Unlock()
	now := time.Unix(0, max(h.Now(), time.Now().UnixNano()))
	first := s.wheel.FirstAfter(slot, now)
	c.shard, c.slot, c.phase, c.first = s, uint16(slot), uint16(phase), uint32(first)
	if h.pushEvery == 0 {
		return 0
	}
	visit := h.pushEvery - phase // the first with visits+phase a multiple of pushEvery
	return s.wheel.Due(first + int64(visit-1)*int64(s.wheel.Slots())).UnixNano()
}

// Register puts c on its shard (Place); its first tick comes within one
// push interval.
func (h *Hub) Register(c *Client) {
	if c.shard == nil {
		h.Place(c)
	}
	s := c.shard
	h.clients.Add(1)
	h.m.Accepted.Inc()
	s.mu.Lock()
	s.adds = append(s.adds, c)
	s.mu.Unlock()
}

// Unregister takes c off its shard once its socket has closed, and counts
// the close under the reason c recorded (ClosedByClient if none).
func (h *Hub) Unregister(c *Client) {
	if c.shard == nil || c.state.Swap(stateClosed) == stateClosed {
		return
	}
	h.clients.Add(-1)
	if c.expires.Swap(0) != 0 {
		h.expiring.Add(-1)
	}
	reason := metrics.ClosedByClient
	if r := c.reason.Load(); r != nil {
		reason = *r
	}
	h.m.Closed(reason)
	s := c.shard
	s.mu.Lock()
	s.dels = append(s.dels, c)
	s.plan.Release(int(c.slot))
	s.mu.Unlock()
}

// Run drives the shards until ctx is done; it returns nil once every shard
// goroutine has exited. Clients are left as they are (Drain closes them).
// Run is called once.
func (h *Hub) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range h.shards {
		wg.Go(func() { s.run(h.stop) })
	}
	<-ctx.Done()
	h.stopOnce.Do(func() { close(h.stop) })
	wg.Wait()
	return nil
}

type drainOrder struct {
	perShard float64 // closes per second per shard
}

// Drain closes every client with CloseShutdown at about rate closes per
// second (so that a restart does not cause a reconnect storm) and waits
// until no client is left or ctx ends. Clients that do not answer the
// close are closed after the close grace.
func (h *Hub) Drain(ctx context.Context, rate int) error {
	if rate <= 0 {
		rate = 10_000
	}
	h.drain.Store(&drainOrder{perShard: float64(rate) / float64(len(h.shards))})
	for _, s := range h.shards {
		select { // a quiet shard sleeps up to a visit period
		case s.wake <- struct{}{}:
		default:
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for h.clients.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("hub: drain: %d clients left: %w", h.clients.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
