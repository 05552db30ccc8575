// Package presence knows who is in a topic: each topic's subscriber count,
// cluster-wide, and, for the topics matching -presence-members, the list
// of its members (user and connection), with join and leave events.
//
// The bus tells the Tracker of every subscription that starts or ends
// (bus.Presence, with the topic's lock held) and is told back the count on
// the other nodes (bus.SetRemote), so that a topic's Count, which the
// hub's shards put on the ticks of subscribers that asked for it, is the
// cluster-wide one.
//
// On a cluster (cluster.go) each node publishes, once a period (±10 %
// jitter, so that reports spread), on core NATS, the local counts and
// member lists of the topics that changed since its last report (a
// heartbeat when none did); every node keeps the latest report of every
// other node and sums them. A node that misses a report (or hears of a
// node it does not know) asks that one node, on its own subject, for a
// full one.
//
// # Liveness
//
// A lease alone cannot tell a dead node from a late one, and on a
// saturated machine (1M clients over 60 processes on 2 cores: load 250)
// reports arrive seconds late: with a fixed 3 s lease every node dropped
// every other one about 40 times, and each drop made every node ask, on a
// subject that every node received (N − 1 requests delivered to each of
// N nodes per dropped node), NATS cut the nodes as slow consumers, and
// the counts never settled. Stretching the lease with the node count or
// the observed delay alone only moves the cliff: the delay of an
// overloaded machine has no bound, and a long lease delays a dead node's
// leave. So the lease only decides when to ask NATS, which knows whether
// a node's connection is still there, and the observed delay stretches
// only the bound for a node that NATS shows connected:
//
//   - A node not heard from for Lease (default 3 periods) is probed: a
//     message on its own subject with a reply subject. If NATS has no
//     subscriber for it (the node died, or lost NATS), the server answers
//     "no responders" at once; the node is probed again a lease later
//     (a node that NATS cut off, e.g. as a slow consumer, has reconnected
//     by then and sent a full report), and on a second "no responders" it
//     is dropped with its counts and members: a dead node's clients leave
//     every count within two leases plus two periods (the period that
//     sees the lease run out, and the jitter): about 8 s by default. If
//     NATS delivers the probe, nothing comes back: the node is alive and
//     merely late, it keeps its counts, and is probed again when its
//     silence reaches 2, 4, 8... leases (a node that died after a late
//     spell leaves within twice its silence).
//   - A node that NATS still shows connected but that sends nothing (hung,
//     or its connection stuck) is dropped after MaxLease (default 10
//     leases, 30 s), or, if reports were seen arriving further apart than
//     that in the last 5–10 minutes, after three times the longest such
//     gap, up to 4 × MaxLease (2 min): the bound for every case. (At 1M
//     clients on this machine the broker itself was starved — its read
//     loop took up to 15 s — and reports came up to 55 s apart.)
//   - A node's own stalls do not count against others: when the loop runs
//     late by more than half a period (the process got no CPU), every
//     peer's last-heard time is moved by as much, and reports already
//     queued are applied before any lease is looked at. A stall longer
//     than a lease, a NATS reconnection, or a sync request makes the node
//     send a full report, so the others need not ask.
//   - Sync requests and probes go to the one node concerned (subjects
//     wspush.presence.sync.<name>, .probe.<name>), never to all; a node asks another at
//     most once per Lease, and only a period after it found the gap (a
//     full report arriving meanwhile makes the request moot). The asked
//     node sends one full report per period however many asked. So when
//     one node is late or loses reports, the others receive nothing but
//     its reports, and it receives at most one probe and one sync
//     request per other node per lease: no event costs every node O(N).
//   - Every per-peer structure is bounded: peers by maxPeers, each peer's
//     topics by maxPeerTopics, its member lists by MaxMembers; the
//     probes' answers wait in a channel of goneCap.
//
// A quick reconnect (members.go, grace) is unaffected: it is local to the
// node the client comes back to.
//
// Members (members.go): a member is a user (the JWT's sub or the connect
// hook's answer; the connection id without authentication) with its
// connections. A user's last connection leaving starts a grace period: if
// the user comes back within it, nobody sees a leave and a join. Join and
// leave events go, at most once per period per topic, to the topic's
// subscribers that asked for presence, and to the webhook sender.
//
// # Concurrency contract
//
//   - mu guards every map and list of the Tracker. It is taken by the
//     bus's calls (Join, Counted, Leave), with a topic's lock held, and by
//     the Tracker's own goroutine and the API; nothing is called while it is
//     held but the webhook producer (a non-blocking channel send). Lock
//     order: a bus topic's lock, then mu.
//   - One goroutine, Run, does everything periodic: it applies other
//     nodes' reports, probes and drops the ones past their lease, ends the
//     members whose grace ran out, sends member events and this node's
//     report. It alone calls bus.SetRemote, so that its calls for a topic
//     come in order. NATS's goroutine for the node's own subject only
//     counts and sets an atomic flag (syncAsked); the counters (stats)
//     are atomic.
//   - Everything is bounded: the local maps by the bus's topics and each
//     member list by MaxMembers, other nodes by maxPeers, the inbound
//     reports by a channel of inboundCap (over it NATS drops them, and the
//     gap is mended by a full report), the grace list by the members (one
//     entry each, however often a client subscribes and unsubscribes), member
//     events by one frame per 100 changes per member topic per period.
package presence

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wspush/server/internal/auth"
	"wspush/server/internal/bus"
	"wspush/server/wire"
)

// Config configures presence; zero means the default.
type Config struct {
	// Period is how often a node reports its changes to the cluster and
	// sends member events (default 1s).
	Period time.Duration
	// Lease is how long a node's report holds (default 3×Period). A node
	// not heard from for this long is probed: if NATS has no subscriber
	// for it (its connection is gone) it is dropped with its counts and
	// members; if NATS still holds its connection it is kept, up to
	// MaxLease.
	Lease time.Duration
	// MaxLease bounds how long a node that NATS still shows connected but
	// that sends nothing (hung, or its reports stuck) is kept (default
	// 10×Lease).
	MaxLease time.Duration
	// Members is a comma-separated list of topic patterns (as in JWT
	// grants: room.*, chat.>) whose topics keep member lists; empty: none.
	Members string
	// MaxMembers caps a topic's member list (default 1000); a subscription
	// that would pass it is refused.
	MaxMembers int
	// Grace is how long a user whose last connection left stays listed
	// (default 5s); a negative value means none.
	Grace time.Duration
	// Node names this node in the cluster's reports (default random).
	Node string
	// Logger receives presence's log lines; nil means slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultPeriod     = time.Second
	DefaultMaxMembers = 1000
	DefaultGrace      = 5 * time.Second
)

// ErrMemberCap refuses a subscription that would pass a topic's member cap.
var ErrMemberCap = errors.New("presence: the topic's member list is full")

func (c Config) withDefaults() Config {
	if c.Period <= 0 {
		c.Period = DefaultPeriod
	}
	if c.Lease <= 0 {
		c.Lease = 3 * c.Period
	}
	if c.MaxLease <= 0 {
		c.MaxLease = 10 * c.Lease
	}
	if c.MaxMembers <= 0 {
		c.MaxMembers = DefaultMaxMembers
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.Grace < 0 {
		c.Grace = 0
	}
	if c.Node == "" {
		c.Node = randomID()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Period < 0 || c.Lease < 0 || c.MaxLease < 0 {
		return errors.New("presence: period and leases must not be negative")
	}
	if c.Node != "" && !validNode(c.Node) {
		return fmt.Errorf("presence: node name %q: no dots, wildcards or spaces", c.Node)
	}
	c = c.withDefaults()
	if c.Lease < c.Period {
		return fmt.Errorf("presence: lease %v is shorter than the period %v", c.Lease, c.Period)
	}
	if c.MaxLease < c.Lease {
		return fmt.Errorf("presence: max lease %v is shorter than the lease %v", c.MaxLease, c.Lease)
	}
	_, err := patterns(c.Members)
	return err
}

func patterns(s string) ([]auth.Pattern, error) {
	var ps []auth.Pattern
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := auth.Compile(f)
		if err != nil {
			return nil, fmt.Errorf("presence: members pattern: %w", err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Bus is the local bus as presence uses it.
type Bus interface {
	SetRemote(topic string, remote int64)
	Lookup(name string) *bus.Topic
}

// Notifier writes a presence event to a topic's subscribers that asked for
// presence (the hub).
type Notifier interface {
	Notify(t *bus.Topic, frame []byte)
}

// Events receives this node's member joins and leaves (the webhook
// sender's Presence); it must not block.
type Events func(topic, user, client string, joined bool)

// Tracker is a node's presence. Create it with New, hand it to the bus
// (bus.SetPresence), then Run it.
type Tracker struct {
	cfg      Config
	patterns []auth.Pattern
	b        Bus
	hub      Notifier
	events   Events
	now      func() time.Time
	net      *transport // nil on a single node (cluster.go)
	due      int64      // Unix ns the current period is due (Run's goroutine only)

	stats     clusterStats // atomic (liveness.go)
	syncAsked atomic.Bool  // a full report was asked of this node (set by NATS's goroutine)

	mu     sync.Mutex // guards everything below
	local  map[string]int32
	sums   map[string]int64          // topic → its count on the other live nodes
	dirty  map[string]struct{}       // topics changed since the last report (cluster only)
	sets   map[string]*memberSet     // topic → its local members (members.go)
	remote map[string]map[string]int // topic → member key → how many other nodes list it
	shown  map[string]map[string]wire.Member
	mdirty map[string]struct{} // member topics whose union may have changed
	grace  []graceEntry        // members in their grace period, oldest first
	peers  map[string]*peer    // the other nodes' reports (cluster.go)
	seq    uint64
	resync bool // send a full report next period
	// the longest gap between two reports of a node, in the current and
	// the previous gapWindow (liveness.go)
	gapCur, gapPrev, gapSince int64
}

// New returns a tracker for b; hub gets member events, events (may be nil)
// this node's joins and leaves.
func New(cfg Config, b Bus, hub Notifier, events Events) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ps, _ := patterns(cfg.Members)
	return &Tracker{cfg: cfg, patterns: ps, b: b, hub: hub, events: events, now: time.Now,
		local: map[string]int32{}, sums: map[string]int64{}, dirty: map[string]struct{}{},
		sets: map[string]*memberSet{}, remote: map[string]map[string]int{}, shown: map[string]map[string]wire.Member{},
		mdirty: map[string]struct{}{}, peers: map[string]*peer{}, resync: true}, nil
}

// Node returns this node's name in the cluster's reports.
func (t *Tracker) Node() string { return t.cfg.Node }

// Counted implements bus.Presence.
func (t *Tracker) Counted(topic string, subs int) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if subs == 0 {
		delete(t.local, topic)
	} else {
		t.local[topic] = int32(subs)
	}
	if t.net != nil {
		t.dirty[topic] = struct{}{}
	}
	return t.sums[topic]
}

// Info is a topic's presence, for the API.
type Info struct {
	Topic string `json:"topic"`
	// Subscribers is the cluster-wide count: Local plus the other live
	// nodes' last reports.
	Subscribers int64 `json:"subscribers"`
	Local       int64 `json:"local"`
	// Pushed is the count this node's ticks carry (bus.Topic.Count), read
	// just after Subscribers; 0 when the node holds no such topic. It
	// equals Subscribers but for a change between the two reads.
	Pushed int64 `json:"pushed"`
	// Nodes is how many nodes' reports are counted (this one included).
	Nodes int `json:"nodes"`
	// Members is the member list, cluster-wide (member topics only).
	Members []wire.Member `json:"members,omitempty"`
	// MembersEnabled tells whether the topic keeps a member list.
	MembersEnabled bool `json:"members_enabled"`
}

// Info returns a topic's presence.
func (t *Tracker) Info(topic string) Info {
	t.mu.Lock()
	in := Info{Topic: topic, Local: int64(t.local[topic]), Nodes: 1 + len(t.livePeers())}
	in.Subscribers = in.Local + t.sums[topic]
	if t.isMemberTopic(topic) {
		in.MembersEnabled = true
		in.Members = t.union(topic)
	}
	t.mu.Unlock()
	// After mu: the bus takes a topic's lock before mu.
	if tp := t.b.Lookup(topic); tp != nil {
		in.Pushed = tp.Count()
	}
	return in
}

func (t *Tracker) isMemberTopic(topic string) bool {
	for _, p := range t.patterns {
		if p.Match(topic) {
			return true
		}
	}
	return false
}
