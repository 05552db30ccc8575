package presence

import (
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// This file is how a node decides that another one is gone, and the
// periodic work of the loop (period). The reasoning is in the package doc
// ("Liveness").

// clusterStats counts the cluster protocol's events (Stats).
type clusterStats struct {
	syncsIn, syncsOut, probesIn, probesOut atomic.Uint64
	fullReports, gaps, stalls, overflow    atomic.Uint64
	goneOnce, goneDrops, silentDrops       atomic.Uint64
}

// gapWindow is how long an observed gap between two reports of a node
// keeps raising the max lease (silentLease): between one and two windows.
const gapWindow = 5 * time.Minute

// observeGap records the time between two reports of one node.
func (t *Tracker) observeGap(now, gap int64) {
	if now-t.gapSince >= int64(gapWindow) {
		t.gapPrev, t.gapCur, t.gapSince = t.gapCur, 0, now
	}
	t.gapCur = max(t.gapCur, gap)
}

// silentLease is how long a node that NATS still shows connected may be
// silent: MaxLease, or three times the longest gap between two reports of
// any node seen in the last one or two gapWindows if that is longer, up to
// 4 × MaxLease. On a machine where reports come 40 s late the nodes wait
// two minutes before dropping a silent one, instead of flapping.
func (t *Tracker) silentLease(now int64) int64 {
	if now-t.gapSince >= 2*int64(gapWindow) {
		t.gapPrev, t.gapCur, t.gapSince = 0, 0, now
	}
	return min(max(int64(t.cfg.MaxLease), 3*max(t.gapPrev, t.gapCur)), 4*int64(t.cfg.MaxLease))
}

// Stats is what the cluster protocol did on this node since it started
// (GET /v1/presence).
type Stats struct {
	Node string `json:"node"`
	// Nodes is how many nodes' reports are counted (this one included).
	Nodes      int   `json:"nodes"`
	PeriodMS   int64 `json:"period_ms"`
	LeaseMS    int64 `json:"lease_ms"`
	MaxLeaseMS int64 `json:"max_lease_ms"`
	// SyncsReceived are full reports other nodes asked of this one;
	// SyncsSent those it asked of others (one node each, never a
	// broadcast).
	SyncsReceived uint64 `json:"syncs_received"`
	SyncsSent     uint64 `json:"syncs_sent"`
	// ProbesReceived/ProbesSent: liveness probes (a node past its lease).
	ProbesReceived uint64 `json:"probes_received"`
	ProbesSent     uint64 `json:"probes_sent"`
	FullReports    uint64 `json:"full_reports"`
	// Gaps are reports of another node found missing (numbering).
	Gaps uint64 `json:"gaps"`
	// GoneOnce: probes NATS answered with no subscriber for the node
	// once (it is asked again a lease later); GoneDrops: nodes dropped
	// because NATS had no subscriber for them twice in a row (their
	// connection is gone); SilentDrops: because they were not heard from
	// for the max lease.
	GoneOnce    uint64 `json:"gone_once"`
	GoneDrops   uint64 `json:"gone_drops"`
	SilentDrops uint64 `json:"silent_drops"`
	// Stalls are periods this node's own loop ran late by more than half
	// a period (its peers' leases were extended by as much).
	Stalls uint64 `json:"stalls"`
	// Overflow counts topics of other nodes not tracked (maxPeerTopics).
	Overflow uint64 `json:"overflow"`
}

// Stats returns the cluster protocol's counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	nodes := 1 + len(t.peers)
	maxLease := time.Duration(t.silentLease(t.now().UnixNano()))
	t.mu.Unlock()
	s := &t.stats
	return Stats{Node: t.cfg.Node, Nodes: nodes, PeriodMS: t.cfg.Period.Milliseconds(), LeaseMS: t.cfg.Lease.Milliseconds(),
		MaxLeaseMS: maxLease.Milliseconds(), SyncsReceived: s.syncsIn.Load(), SyncsSent: s.syncsOut.Load(),
		ProbesReceived: s.probesIn.Load(), ProbesSent: s.probesOut.Load(), FullReports: s.fullReports.Load(),
		Gaps: s.gaps.Load(), GoneOnce: s.goneOnce.Load(), GoneDrops: s.goneDrops.Load(), SilentDrops: s.silentDrops.Load(),
		Stalls: s.stalls.Load(), Overflow: s.overflow.Load()}
}

// nextPeriod is the wait until the next period: the period ±10 %, so that
// the nodes' reports spread instead of arriving together.
func (t *Tracker) nextPeriod(now time.Time) time.Duration {
	p := int64(t.cfg.Period)
	d := time.Duration(p - p/10 + rand.Int64N(p/5+1))
	t.due = now.UnixNano() + int64(d)
	return d
}

// period is the loop's periodic work.
func (t *Tracker) period(now time.Time) {
	nowNs := now.UnixNano()
	late := nowNs - t.due
	var sets []remoteSet
	var lefts []left
	var events []event
	var out [][]byte
	var probes, asks []string
	reconnected := false
	if t.net != nil {
		if r := t.net.nc.Stats().Reconnects; r != t.net.reconnects {
			t.net.reconnects, reconnected = r, true
		}
	}
	t.mu.Lock()
	if t.due != 0 && late > int64(t.cfg.Period)/2 {
		// This loop did not run for a while (a starved process): the
		// silence it saw was its own, so every peer gets the time back.
		// A stall longer than a lease may have made others give up on
		// this node: it sends everything again.
		t.stats.stalls.Add(1)
		for _, p := range t.peers {
			p.seen += late
		}
		if late > int64(t.cfg.Lease) {
			t.resync = true
		}
	}
	if t.syncAsked.Swap(false) || reconnected {
		t.resync = true // asked, or reconnected: others may have missed reports or dropped this node
	}
	var dead []left
	silent := t.silentLease(nowNs)
	for node, p := range t.peers {
		age := nowNs - p.seen
		switch {
		case age > silent:
			t.stats.silentDrops.Add(1)
			t.cfg.Logger.Info("presence: a node was silent for the max lease", "node", node, "silent", time.Duration(age),
				"max_lease", time.Duration(silent))
			sets, dead = t.expire(node, p, sets, dead)
			continue
		case p.goneAt != 0:
			// NATS said once that it has no subscriber for the node: ask
			// again a lease later (a node cut off, e.g. as a slow
			// consumer, reconnects meanwhile and is not dropped).
			if nowNs-p.goneAt >= int64(t.cfg.Lease) && p.probed <= p.goneAt {
				p.probed = nowNs
				probes = append(probes, node)
			}
		case age > int64(t.cfg.Lease)<<min(p.probes, 8):
			// Past the lease, then twice, four times... as long: a
			// node that stays late costs a probe at ever longer
			// intervals, up to MaxLease.
			p.probed = nowNs
			p.probes++
			probes = append(probes, node)
		}
		if p.want != 0 && nowNs-p.want >= int64(t.cfg.Period) && nowNs-p.asked >= int64(t.cfg.Lease) {
			p.asked = nowNs
			asks = append(asks, node)
		}
	}
	lefts = t.deadLefts(dead, lefts)
	lefts = t.expireGrace(nowNs, lefts)
	events = t.memberEvents(events)
	if t.net != nil {
		out = t.report()
	}
	t.mu.Unlock()
	t.setRemote(sets)
	t.tellLefts(lefts)
	for _, e := range events {
		if tp := t.b.Lookup(e.topic); tp != nil {
			t.hub.Notify(tp, e.frame)
		}
	}
	if t.net == nil {
		return
	}
	nc := t.net.nc
	for _, node := range probes {
		t.stats.probesOut.Add(1)
		_ = nc.PublishMsg(&nats.Msg{Subject: probePrefix + node, Reply: gonePrefix + t.cfg.Node + "." + node})
	}
	for _, node := range asks {
		t.stats.syncsOut.Add(1)
		_ = nc.Publish(syncPrefix+node, nil)
	}
	for _, b := range out {
		_ = nc.Publish(reportSubject, b)
	}
}

// noResponders handles NATS's answer to a probe that no subscriber got:
// the node's connection is gone (dead, or cut off from NATS), so it is
// dropped now, unless it reported since the probe.
func (t *Tracker) noResponders(m *nats.Msg) {
	if m.Header.Get("Status") != "503" {
		return
	}
	node := strings.TrimPrefix(m.Subject, gonePrefix+t.cfg.Node+".")
	var sets []remoteSet
	var dead, lefts []left
	t.mu.Lock()
	p := t.peers[node]
	if p == nil || p.seen >= p.probed {
		t.mu.Unlock()
		return
	}
	if p.goneAt == 0 || p.probed <= p.goneAt {
		p.goneAt = t.now().UnixNano() // once: ask again a lease later (period)
		t.stats.goneOnce.Add(1)
		t.mu.Unlock()
		return
	}
	t.stats.goneDrops.Add(1)
	t.cfg.Logger.Info("presence: a node's lease ran out and NATS has no subscriber for it", "node", node)
	sets, dead = t.expire(node, p, sets, dead)
	lefts = t.deadLefts(dead, lefts)
	t.mu.Unlock()
	t.setRemote(sets)
	t.tellLefts(lefts)
}

// expire drops node p, collecting its members.
func (t *Tracker) expire(node string, p *peer, sets []remoteSet, dead []left) ([]remoteSet, []left) {
	for topic, l := range p.members {
		for _, m := range l {
			dead = append(dead, left{topic, m.User, m.Client})
		}
	}
	return t.dropPeer(node, p, sets), dead
}

// deadLefts picks, of the members of dropped nodes, those no live node
// lists; the surviving node with the smallest name tells the webhook.
func (t *Tracker) deadLefts(dead, out []left) []left {
	if len(dead) == 0 || !t.smallest() {
		return out
	}
	for _, d := range dead {
		if _, still := t.unionMap(d.topic)[memberKey(d.user, d.client)]; !still {
			out = append(out, d)
		}
	}
	return out
}

func (t *Tracker) tellLefts(lefts []left) {
	if t.events == nil {
		return
	}
	for _, l := range lefts {
		t.events(l.topic, l.user, l.client, false)
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
