package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sort"
	"time"

	"github.com/nats-io/nats.go"

	"wspush/server/wire"
)

// This file is how counts and members travel between nodes, and the loop
// (Run) that does everything periodic.
//
// Reports go on core NATS (not JetStream: they are state, not history, and
// the next one supersedes them): subject reportSubject, JSON. A report
// carries, for each topic that changed since the node's previous report,
// the node's local count (0: none) and, for member topics, its whole local
// member list; with reset set, it is the first of a full report and the
// receiver forgets the node's earlier ones. Reports are numbered; a
// receiver that sees a gap (NATS dropped one: core NATS is at most once)
// or a node it does not know asks it, on syncSubject, for a full report.
// Every node reports every period, an empty report when nothing changed,
// which keeps its lease.

const (
	reportSubject = "wspush.presence.report"
	syncSubject   = "wspush.presence.sync"
	inboundCap    = 1024      // reports waiting for the loop
	maxPeers      = 1024      // other nodes tracked
	maxReport     = 256 << 10 // bytes of one report, about (NATS's default payload cap is 1 MiB)
)

type report struct {
	Node    string                   `json:"node"`
	Seq     uint64                   `json:"seq"`
	Reset   bool                     `json:"reset,omitempty"`
	Bye     bool                     `json:"bye,omitempty"` // the node is stopping: forget it now
	Counts  map[string]int32         `json:"counts,omitempty"`
	Members map[string][]wire.Member `json:"members,omitempty"`
}

// peer is another node as its reports tell.
type peer struct {
	seq     uint64
	seen    int64 // Unix ns of its last report
	asked   int64 // Unix ns of the last full report asked of it
	counts  map[string]int32
	members map[string][]wire.Member
}

// transport is the NATS side: nil on a single node.
type transport struct {
	nc      *nats.Conn
	reports chan *nats.Msg
	syncs   chan *nats.Msg
}

// UseNATS makes the tracker share counts and members through nc; call it
// before Run.
func (t *Tracker) UseNATS(nc *nats.Conn) {
	t.net = &transport{nc: nc, reports: make(chan *nats.Msg, inboundCap), syncs: make(chan *nats.Msg, 16)}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run does presence's periodic work until ctx is done; on a cluster it
// then tells the other nodes this one is gone.
func (t *Tracker) Run(ctx context.Context) error {
	if n := t.net; n != nil {
		rs, err := n.nc.ChanSubscribe(reportSubject, n.reports)
		if err != nil {
			return err
		}
		defer func() { _ = rs.Unsubscribe() }()
		ss, err := n.nc.ChanSubscribe(syncSubject, n.syncs)
		if err != nil {
			return err
		}
		defer func() { _ = ss.Unsubscribe() }()
	}
	tick := time.NewTicker(t.cfg.Period)
	defer tick.Stop()
	var reports, syncs chan *nats.Msg
	if t.net != nil {
		reports, syncs = t.net.reports, t.net.syncs
	}
	for {
		select {
		case <-ctx.Done():
			if t.net != nil {
				t.mu.Lock()
				t.seq++
				b, _ := json.Marshal(report{Node: t.cfg.Node, Seq: t.seq, Bye: true})
				t.mu.Unlock()
				_ = t.net.nc.Publish(reportSubject, b)
				_ = t.net.nc.Flush()
			}
			return nil
		case m := <-reports:
			t.receive(m.Data)
		case m := <-syncs:
			if string(m.Data) == t.cfg.Node {
				t.mu.Lock()
				t.resync = true
				t.mu.Unlock()
			}
		case now := <-tick.C:
			t.period(now)
		}
	}
}

// remoteSet is a topic's new count on the other nodes, for bus.SetRemote.
type remoteSet struct {
	topic string
	n     int64
}

// receive applies one node's report.
func (t *Tracker) receive(data []byte) {
	var r report
	if err := json.Unmarshal(data, &r); err != nil || r.Node == "" {
		t.cfg.Logger.Warn("presence: bad report", "err", err)
		return
	}
	if r.Node == t.cfg.Node {
		return
	}
	now := t.now().UnixNano()
	var sets []remoteSet
	var ask bool
	t.mu.Lock()
	p := t.peers[r.Node]
	switch {
	case r.Bye:
		if p != nil {
			sets = t.dropPeer(r.Node, p, sets)
		}
		t.mu.Unlock()
		t.setRemote(sets)
		return
	case p == nil:
		if len(t.peers) >= maxPeers {
			t.mu.Unlock()
			return
		}
		p = &peer{counts: map[string]int32{}, members: map[string][]wire.Member{}}
		t.peers[r.Node] = p
		ask = !r.Reset // joined mid-stream: ask for everything
	case r.Reset:
		sets = t.clearPeer(p, sets)
	case r.Seq != p.seq+1:
		ask = true // a report was lost; what came still holds
	}
	if ask && now-p.asked < int64(t.cfg.Period) {
		ask = false
	}
	if ask {
		p.asked = now
	}
	p.seq, p.seen = r.Seq, now
	for topic, n := range r.Counts {
		sets = t.setCount(p, topic, n, sets)
	}
	for topic, l := range r.Members {
		t.setMembers(p, topic, l)
	}
	t.mu.Unlock()
	t.setRemote(sets)
	if ask {
		_ = t.net.nc.Publish(syncSubject, []byte(r.Node))
	}
}

// setCount records p's count of topic.
func (t *Tracker) setCount(p *peer, topic string, n int32, sets []remoteSet) []remoteSet {
	if n < 0 {
		n = 0
	}
	old := p.counts[topic]
	if n == old {
		return sets
	}
	if n == 0 {
		delete(p.counts, topic)
	} else {
		p.counts[topic] = n
	}
	s := t.sums[topic] + int64(n-old)
	if s == 0 {
		delete(t.sums, topic)
	} else {
		t.sums[topic] = s
	}
	return append(sets, remoteSet{topic, s})
}

// setMembers records p's member list of topic (empty: none).
func (t *Tracker) setMembers(p *peer, topic string, l []wire.Member) {
	if !t.isMemberTopic(topic) {
		return // not a member topic here: configure every node alike
	}
	if len(l) > t.cfg.MaxMembers {
		l = l[:t.cfg.MaxMembers]
	}
	rem := t.remote[topic]
	for _, m := range p.members[topic] {
		k := memberKey(m.User, m.Client)
		if rem[k]--; rem[k] <= 0 {
			delete(rem, k)
		}
	}
	if len(l) == 0 {
		delete(p.members, topic)
	} else {
		p.members[topic] = l
		if rem == nil {
			rem = map[string]int{}
			t.remote[topic] = rem
		}
		for _, m := range l {
			rem[memberKey(m.User, m.Client)]++
		}
	}
	if len(rem) == 0 {
		delete(t.remote, topic)
	}
	t.mdirty[topic] = struct{}{}
}

// clearPeer forgets what p reported.
func (t *Tracker) clearPeer(p *peer, sets []remoteSet) []remoteSet {
	for topic := range p.counts {
		sets = t.setCount(p, topic, 0, sets)
	}
	for topic := range p.members {
		t.setMembers(p, topic, nil)
	}
	return sets
}

// dropPeer forgets node p: it stopped or its lease ran out.
func (t *Tracker) dropPeer(node string, p *peer, sets []remoteSet) []remoteSet {
	sets = t.clearPeer(p, sets)
	delete(t.peers, node)
	return sets
}

func (t *Tracker) livePeers() map[string]*peer { return t.peers }

func (t *Tracker) setRemote(sets []remoteSet) {
	for _, s := range sets {
		t.b.SetRemote(s.topic, s.n)
	}
}

// period is the loop's periodic work.
func (t *Tracker) period(now time.Time) {
	nowNs := now.UnixNano()
	var sets []remoteSet
	var lefts []left
	var events []event
	var out [][]byte
	t.mu.Lock()
	// Nodes past their lease leave, with their members; the surviving node
	// with the smallest name tells the webhook of those members.
	var deadMembers []left
	for node, p := range t.peers {
		if nowNs-p.seen > int64(t.cfg.Lease) {
			for topic, l := range p.members {
				for _, m := range l {
					deadMembers = append(deadMembers, left{topic, m.User, m.Client})
				}
			}
			sets = t.dropPeer(node, p, sets)
			t.cfg.Logger.Info("presence: a node's lease ran out", "node", node)
		}
	}
	if len(deadMembers) > 0 && t.smallest() {
		for _, d := range deadMembers {
			u := t.unionMap(d.topic)
			if _, still := u[memberKey(d.user, d.client)]; !still {
				lefts = append(lefts, d)
			}
		}
	}
	lefts = t.expireGrace(nowNs, lefts)
	events = t.memberEvents(events)
	if t.net != nil {
		out = t.report()
	}
	t.mu.Unlock()
	t.setRemote(sets)
	if t.events != nil {
		for _, l := range lefts {
			t.events(l.topic, l.user, l.client, false)
		}
	}
	for _, e := range events {
		if tp := t.b.Lookup(e.topic); tp != nil {
			t.hub.Notify(tp, e.frame)
		}
	}
	for _, b := range out {
		_ = t.net.nc.Publish(reportSubject, b)
	}
}

// smallest reports whether this node has the smallest name of the live ones.
func (t *Tracker) smallest() bool {
	for node := range t.peers {
		if node < t.cfg.Node {
			return false
		}
	}
	return true
}

// report encodes this node's report: the topics changed since the last
// one, or all of them after a resync; in pieces of about maxReport bytes.
func (t *Tracker) report() [][]byte {
	topics := t.dirty
	reset := t.resync
	if reset {
		topics = map[string]struct{}{}
		for topic := range t.local {
			topics[topic] = struct{}{}
		}
		for topic := range t.sets {
			topics[topic] = struct{}{}
		}
	}
	names := make([]string, 0, len(topics))
	for topic := range topics {
		names = append(names, topic)
	}
	sort.Strings(names)
	var out [][]byte
	r := report{Node: t.cfg.Node, Reset: reset}
	size := 0
	flush := func() {
		t.seq++
		r.Seq = t.seq
		b, _ := json.Marshal(r)
		out = append(out, b)
		r = report{Node: t.cfg.Node}
		size = 0
	}
	for _, topic := range names {
		if r.Counts == nil {
			r.Counts = map[string]int32{}
		}
		r.Counts[topic] = t.local[topic]
		size += len(topic) + 16
		if t.isMemberTopic(topic) {
			var l []wire.Member
			if set := t.sets[topic]; set != nil {
				for _, m := range set.users {
					c := m.last
					if len(m.clients) > 0 {
						c = m.clients[0]
					}
					l = append(l, wire.Member{User: m.user, Client: c})
					size += len(m.user) + len(c) + 30
				}
			}
			if r.Members == nil {
				r.Members = map[string][]wire.Member{}
			}
			r.Members[topic] = l
		}
		if size >= maxReport {
			flush()
		}
	}
	if size > 0 || len(out) == 0 {
		flush() // the rest, or the heartbeat
	}
	clear(t.dirty)
	t.resync = false
	return out
}
