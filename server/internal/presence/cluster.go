package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"wspush/server/wire"
)

// This file is how counts and members travel between nodes, and the loop
// (Run) that does everything periodic; liveness.go is how a node decides
// that another one is gone.
//
// Reports go on core NATS (not JetStream: they are state, not history, and
// the next one supersedes them): subject reportSubject, JSON, received by
// every node. A report carries, for each topic that changed since the
// node's previous report, the node's local count (0: none) and, for member
// topics, its whole local member list; with reset set, it is the first of
// a full report and the receiver forgets the node's earlier ones. Reports
// are numbered. Every node reports every period (jittered), an empty
// report when nothing changed, which keeps its lease.
//
// Everything else is addressed to one node, on subjects of its own:
// syncPrefix+name asks it for a full report (a receiver saw a gap in its
// numbers, or does not know it), probePrefix+name asks NATS whether its
// connection is still there (liveness.go). Nobody else receives them.

const (
	reportSubject = "wspush.presence.report"
	syncPrefix    = "wspush.presence.sync."  // + node: full reports asked of it
	probePrefix   = "wspush.presence.probe." // + node: probes of it
	gonePrefix    = "wspush.presence.gone."  // + asker + "." + node: NATS's "no responders" for a probe
	inboundCap    = 1024                     // reports waiting for the loop
	goneCap       = 64                       // "no responders" answers waiting for the loop
	maxPeers      = 1024                     // other nodes tracked
	maxPeerTopics = 1 << 20                  // topics tracked per other node
	maxReport     = 256 << 10                // bytes of one report, about (NATS's default payload cap is 1 MiB)
)

type report struct {
	Node    string                   `json:"node"`
	Seq     uint64                   `json:"seq"`
	Reset   bool                     `json:"reset,omitempty"`
	Bye     bool                     `json:"bye,omitempty"` // the node is stopping: forget it now
	Counts  map[string]int32         `json:"counts,omitempty"`
	Members map[string][]wire.Member `json:"members,omitempty"`
}

// peer is another node as its reports tell. Its maps are bounded by
// maxPeerTopics (and each member list by MaxMembers).
type peer struct {
	seq     uint64
	seen    int64 // Unix ns of its last report, plus this node's own stalls since (liveness.go)
	want    int64 // Unix ns since a full report of it is wanted (0: none)
	asked   int64 // Unix ns of the last full report asked of it
	probed  int64 // Unix ns of the last probe sent to it
	probes  int   // probes sent since its last report
	heard   int64 // Unix ns its last report arrived (seen without the stall credit)
	goneAt  int64 // Unix ns NATS first had no subscriber for it since its last report (0: not)
	counts  map[string]int32
	members map[string][]wire.Member
}

// transport is the NATS side: nil on a single node.
type transport struct {
	nc         *nats.Conn
	reports    chan *nats.Msg
	gone       chan *nats.Msg
	reconnects uint64 // nc's reconnections when last looked (Run's goroutine only)
}

// UseNATS makes the tracker share counts and members through nc; call it
// before Run.
func (t *Tracker) UseNATS(nc *nats.Conn) {
	t.net = &transport{nc: nc, reports: make(chan *nats.Msg, inboundCap), gone: make(chan *nats.Msg, goneCap),
		reconnects: nc.Stats().Reconnects}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validNode reports whether name can be a NATS subject token.
func validNode(name string) bool {
	return name != "" && !strings.ContainsAny(name, ".*> \t\r\n")
}

// Run does presence's periodic work until ctx is done; on a cluster it
// then tells the other nodes this one is gone.
func (t *Tracker) Run(ctx context.Context) error {
	var reports, gone chan *nats.Msg
	if n := t.net; n != nil {
		rs, err := n.nc.ChanSubscribe(reportSubject, n.reports)
		if err != nil {
			return err
		}
		defer func() { _ = rs.Unsubscribe() }()
		// The node's own subjects: callbacks that only count and set a
		// flag, so they never fall behind however many ask.
		ss, err := n.nc.Subscribe(syncPrefix+t.cfg.Node, func(*nats.Msg) {
			t.stats.syncsIn.Add(1)
			t.syncAsked.Store(true)
		})
		if err != nil {
			return err
		}
		defer func() { _ = ss.Unsubscribe() }()
		ps, err := n.nc.Subscribe(probePrefix+t.cfg.Node, func(*nats.Msg) {
			t.stats.probesIn.Add(1) // delivered: that is the whole answer
		})
		if err != nil {
			return err
		}
		defer func() { _ = ps.Unsubscribe() }()
		gs, err := n.nc.ChanSubscribe(gonePrefix+t.cfg.Node+".*", n.gone)
		if err != nil {
			return err
		}
		defer func() { _ = gs.Unsubscribe() }()
		reports, gone = n.reports, n.gone
	}
	timer := time.NewTimer(t.nextPeriod(t.now()))
	defer timer.Stop()
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
		case m := <-gone:
			t.noResponders(m)
		case now := <-timer.C:
			// Reports that came while the loop waited count first: a
			// node is never dropped for a report that sits in the queue.
			for n := len(reports); n > 0; n-- {
				t.receive((<-reports).Data)
			}
			t.period(now)
			timer.Reset(t.nextPeriod(t.now()))
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
	if err := json.Unmarshal(data, &r); err != nil || !validNode(r.Node) {
		t.cfg.Logger.Warn("presence: bad report", "err", err)
		return
	}
	if r.Node == t.cfg.Node {
		return
	}
	now := t.now().UnixNano()
	var sets []remoteSet
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
		if !r.Reset {
			p.want = now // joined mid-stream: a full report is wanted
		}
	case r.Reset:
		sets = t.clearPeer(p, sets)
	case r.Seq != p.seq+1:
		t.stats.gaps.Add(1)
		if p.want == 0 {
			p.want = now // a report was lost; what came still holds
		}
	}
	if r.Reset {
		p.want = 0
	}
	if p.heard != 0 {
		t.observeGap(now, now-p.heard)
	}
	p.seq, p.seen, p.heard, p.probes, p.goneAt = r.Seq, max(now, p.seen), now, 0, 0
	for topic, n := range r.Counts {
		sets = t.setCount(p, topic, n, sets)
	}
	for topic, l := range r.Members {
		t.setMembers(p, topic, l)
	}
	t.mu.Unlock()
	t.setRemote(sets)
}

// setCount records p's count of topic.
func (t *Tracker) setCount(p *peer, topic string, n int32, sets []remoteSet) []remoteSet {
	if n < 0 {
		n = 0
	}
	old, had := p.counts[topic]
	if n == old {
		return sets
	}
	if !had && len(p.counts) >= maxPeerTopics {
		t.stats.overflow.Add(1)
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
	if _, had := p.members[topic]; !had && len(l) > 0 && len(p.members) >= maxPeerTopics {
		t.stats.overflow.Add(1)
		return
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

// dropPeer forgets node p: it stopped or is gone.
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

// report encodes this node's report: the topics changed since the last
// one, or all of them after a resync; in pieces of about maxReport bytes.
func (t *Tracker) report() [][]byte {
	topics := t.dirty
	reset := t.resync
	if reset {
		t.stats.fullReports.Add(1)
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
