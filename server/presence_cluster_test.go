package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// stallProxy forwards 127.0.0.1 connections to a target. stall holds
// every byte in both directions (the connection stays open, the bytes
// arrive after release: a path, or a process, that is late, not gone);
// cut resets the connections.
type stallProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards everything below
	gate  chan struct{}
	conns map[net.Conn]struct{}
	ports map[int]bool // local ports of the connections to the target
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	close(open)
	p := &stallProxy{ln: ln, target: target, gate: open, conns: map[net.Conn]struct{}{}, ports: map[int]bool{}}
	go p.serve()
	t.Cleanup(func() {
		p.release()
		ln.Close()
		p.cut()
	})
	return p
}

func (p *stallProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *stallProxy) serve() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		p.mu.Lock()
		p.conns[a], p.conns[b] = struct{}{}, struct{}{}
		p.ports[b.LocalAddr().(*net.TCPAddr).Port] = true
		p.mu.Unlock()
		go p.pipe(a, b)
		go p.pipe(b, a)
	}
}

func (p *stallProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			g := p.gate
			p.mu.Unlock()
			<-g
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			break
		}
	}
	src.Close()
	dst.Close()
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

func (p *stallProxy) release() {
	p.mu.Lock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	p.mu.Unlock()
}

func (p *stallProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
		delete(p.conns, c)
	}
}

// viaProxy reports whether a NATS connection (by its client port) goes
// through p.
func (p *stallProxy) viaProxy(port int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ports[port]
}

// presenceControl is, per live NATS connection (by client port), how many
// presence messages other than reports the server delivered to it:
// requests for a full report ("sync") and probes, by subscription subject
// (wspush.presence.sync or .sync.<node>, .probe.<node>, .gone.<node>.*).
func presenceControl(t *testing.T, ns *natsserver.Server) (syncs, probes map[int]int64) {
	t.Helper()
	cz, err := ns.Connz(&natsserver.ConnzOptions{Subscriptions: true, SubscriptionsDetail: true, Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	syncs, probes = map[int]int64{}, map[int]int64{}
	for _, c := range cz.Conns {
		for _, s := range c.SubsDetail {
			switch {
			case strings.HasPrefix(s.Subject, "wspush.presence.sync"):
				syncs[c.Port] += s.Msgs
			case strings.HasPrefix(s.Subject, "wspush.presence.") && s.Subject != "wspush.presence.report":
				probes[c.Port] += s.Msgs
			}
		}
	}
	return syncs, probes
}

// everyNodeCounts waits until every node counts want subscribers of topic
// and all the nodes.
func everyNodeCounts(t *testing.T, nodes []*testServer, topic string, want int64, d time.Duration) {
	t.Helper()
	eventually(t, d, fmt.Sprintf("every node counts %d subscribers and %d nodes", want, len(nodes)), func() bool {
		for _, s := range nodes {
			if in := presenceOf(t, s, topic); in.Subscribers != want || in.Nodes != len(nodes) {
				return false
			}
		}
		return true
	})
}

// settled waits until the presence control messages stop changing for
// quiet (or d passes) and returns them.
func settled(t *testing.T, ns *natsserver.Server, quiet, d time.Duration) (syncs, probes map[int]int64) {
	t.Helper()
	syncs, probes = presenceControl(t, ns)
	since := time.Now()
	for deadline := time.Now().Add(d); time.Now().Before(deadline) && time.Since(since) < quiet; {
		time.Sleep(50 * time.Millisecond)
		s, p := presenceControl(t, ns)
		if fmt.Sprint(s, p) != fmt.Sprint(syncs, probes) {
			syncs, probes, since = s, p, time.Now()
		}
	}
	return syncs, probes
}

// TestPresenceClusterControlTrafficPerNode: one node of eight has its NATS
// path stalled for longer than the lease (twice), then cut. The requests
// for full reports and the probes this causes go to the node concerned
// only: every other node receives O(1) of them per event, not one per
// node (the old protocol: every node asked on one subject that every node
// received, so each event cost every node N-1 or more).
func TestPresenceClusterControlTrafficPerNode(t *testing.T) {
	const n = 8
	const topic = "room.control"
	flags := []string{"-push-interval", "0", "-presence-period", "200ms", "-presence-lease", "600ms"}
	ns := startNATS(t, t.TempDir(), -1)
	proxy := newStallProxy(t, strings.TrimPrefix(ns.ClientURL(), "nats://"))
	var nodes []*testServer
	for i := 0; i < n-1; i++ {
		nodes = append(nodes, startServer(t, append([]string{"-nats", ns.ClientURL()}, flags...)...))
	}
	late := startServer(t, append([]string{"-nats", proxy.url()}, flags...)...)
	nodes = append(nodes, late)
	for _, s := range nodes {
		subscriber(t, s, topic)
		subscriber(t, s, topic)
	}
	everyNodeCounts(t, nodes, topic, 2*n, 15*time.Second)
	syncs0, probes0 := settled(t, ns, time.Second, 5*time.Second)

	events := 0
	for i := 0; i < 2; i++ { // late by more than three leases, twice
		proxy.stall()
		time.Sleep(2 * time.Second) // the stall being tested
		proxy.release()
		events++
		everyNodeCounts(t, nodes, topic, 2*n, 15*time.Second)
	}
	proxy.cut() // its reports (and others' to it) lost; it reconnects
	events++
	everyNodeCounts(t, nodes, topic, 2*n, 15*time.Second)
	syncs, probes := settled(t, ns, 2*time.Second, 15*time.Second)

	var lateSyncs, lateProbes int64
	for port, v := range syncs {
		ds, dp := v-syncs0[port], probes[port]-probes0[port]
		if proxy.viaProxy(port) {
			lateSyncs, lateProbes = lateSyncs+v, lateProbes+probes[port] // a new connection after the cut: all of it
			continue
		}
		t.Logf("node on port %d: %d sync requests, %d probes received", port, ds, dp)
		// At most one sync request (from the late node, which may have
		// lost their reports) and two probes (its own: at one and two
		// leases) per event.
		if ds > int64(events) || dp > 2*int64(events) {
			t.Errorf("node on port %d received %d sync requests and %d probes for %d events of one other node; want at most %d and %d",
				port, ds, dp, events, events, 2*events)
		}
	}
	t.Logf("the late node: %d sync requests, %d probes received (its current connection)", lateSyncs, lateProbes)
	if lateSyncs > int64(events*(n-1)) {
		t.Errorf("the late node received %d sync requests, want at most one per other node per event (%d)", lateSyncs, events*(n-1))
	}
}

// TestPresenceClusterLateReportsDoNotFlap: a node whose reports (and
// everything else on its NATS connection) arrive 1.5 s late — well past
// the 600 ms lease — while NATS still holds its connection stays counted:
// no node's count of the topic ever moves.
func TestPresenceClusterLateReportsDoNotFlap(t *testing.T) {
	const topic = "room.late"
	flags := []string{"-push-interval", "0", "-presence-period", "200ms", "-presence-lease", "600ms"}
	ns := startNATS(t, t.TempDir(), -1)
	proxy := newStallProxy(t, strings.TrimPrefix(ns.ClientURL(), "nats://"))
	nodes := []*testServer{
		startServer(t, append([]string{"-nats", ns.ClientURL()}, flags...)...),
		startServer(t, append([]string{"-nats", ns.ClientURL()}, flags...)...),
		startServer(t, append([]string{"-nats", proxy.url()}, flags...)...),
	}
	for _, s := range nodes {
		for j := 0; j < 3; j++ {
			subscriber(t, s, topic)
		}
	}
	everyNodeCounts(t, nodes, topic, 9, 15*time.Second)

	for round := 0; round < 3; round++ {
		proxy.stall()
		stalled := time.Now()
		for time.Since(stalled) < 1500*time.Millisecond { // poll every node through the stall
			for i, s := range nodes {
				if in := presenceOf(t, s, topic); in.Subscribers != 9 || in.Nodes != 3 {
					t.Fatalf("round %d, %v into a stall: node %d counts %d subscribers on %d nodes, want 9 on 3",
						round, time.Since(stalled).Round(time.Millisecond), i, in.Subscribers, in.Nodes)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		proxy.release()
		everyNodeCounts(t, nodes, topic, 9, 15*time.Second)
		time.Sleep(500 * time.Millisecond) // reports flowing again between stalls
	}
}
