package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// startNATS runs a real NATS server with JetStream in-process, on port
// (-1: any free port), storing in dir.
func startNATS(t *testing.T, dir string, port int) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func startClusterNode(t *testing.T, ns *natsserver.Server, flags ...string) *testServer {
	t.Helper()
	return startServer(t, append([]string{"-nats", ns.ClientURL(), "-push-interval", "0"}, flags...)...)
}

func healthy(s *testServer) bool {
	resp, err := http.Get(s.admin + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// readMsgs reads n msg frames of topic and returns their seq→data.
func readMsgs(t *testing.T, c *websocket.Conn, topic string, from uint64, n int) []string {
	t.Helper()
	var data []string
	for want := from; len(data) < n; want++ {
		m := next(t, c, 10*time.Second)
		if m.Type == wire.TypeSubscribed && !m.HistoryGone {
			want-- // an epoch notice: no message lost
			continue
		}
		if m.Type != wire.TypeMsg || m.Topic != topic || m.Seq != want {
			t.Fatalf("got %s seq %d, want %s seq %d", m.Topic, m.Seq, topic, want)
		}
		data = append(data, string(m.Data))
	}
	return data
}

func TestClusterNodesSeeTheSameSequence(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	nodes := []*testServer{startClusterNode(t, ns), startClusterNode(t, ns), startClusterNode(t, ns)}
	for _, n := range nodes {
		eventually(t, 10*time.Second, "node healthy", func() bool { return healthy(n) })
	}
	var subs []*websocket.Conn
	for _, n := range nodes {
		c := dial(t, n.ws)
		next(t, c, 2*time.Second)
		if m := subscribe(t, c, `{"type":"sub","topic":"game.42"}`); m.Seq != 0 {
			t.Fatalf("subscribed %+v", m)
		}
		subs = append(subs, c)
	}
	// Publishers on two nodes at once: one sequence, no holes.
	const each = 60
	var wg sync.WaitGroup
	for _, n := range nodes[:2] {
		wg.Add(1)
		go func(n *testServer) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				resp, err := http.Post(n.admin+"/v1/publish", "application/json", strings.NewReader(fmt.Sprintf(`{"topic":"game.42","data":"%s-%d"}`, n.admin, i)))
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("publish: %v %v", err, resp)
					return
				}
				resp.Body.Close()
			}
		}(n)
	}
	wg.Wait()
	first := readMsgs(t, subs[0], "game.42", 1, 2*each)
	for i, c := range subs[1:] {
		if got := readMsgs(t, c, "game.42", 1, 2*each); strings.Join(got, ",") != strings.Join(first, ",") {
			t.Fatalf("node %d saw another order than node 0", i+1)
		}
	}
	// A broadcast on the third node reaches every node's clients.
	if code, body := post(t, nodes[2].admin+"/v1/broadcast", `{"data":"all"}`); code != 200 {
		t.Fatalf("broadcast: %d %s", code, body)
	}
	for _, c := range subs {
		if m := nextOf(t, c, wire.TypeMsg, 10*time.Second); m.Topic != wire.BroadcastTopic || string(m.Data) != `"all"` {
			t.Fatalf("broadcast arrived as %+v", m)
		}
	}
	_, body := get(t, nodes[1].admin+"/metrics")
	if !strings.Contains(body, "wspush_nats_publishes_total") || !strings.Contains(body, "wspush_nats_connected 1") {
		t.Fatal("bus metrics missing")
	}
}

func TestClusterClientResumesOnAnotherNode(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	a, b, c := startClusterNode(t, ns), startClusterNode(t, ns), startClusterNode(t, ns)
	for _, n := range []*testServer{a, b, c} {
		eventually(t, 10*time.Second, "node healthy", func() bool { return healthy(n) })
	}
	cl := dial(t, b.ws)
	next(t, cl, 2*time.Second)
	sub := subscribe(t, cl, `{"type":"sub","topic":"orders"}`)
	publish(t, a, "orders", "1")
	// The topic's first message fixes its epoch for the whole cluster: a
	// subscriber that came before it is told.
	if m := next(t, cl, 10*time.Second); m.Type != wire.TypeSubscribed || m.Seq != 0 || m.HistoryGone || m.Epoch == sub.Epoch {
		t.Fatalf("epoch notice: %+v", m)
	} else {
		sub = m
	}
	for i := 2; i <= 10; i++ {
		publish(t, a, "orders", fmt.Sprint(i))
	}
	readMsgs(t, cl, "orders", 1, 10)
	// Node b dies; publishing goes on meanwhile.
	b.n.shutdown(b.cfg)
	for i := 11; i <= 25; i++ {
		publish(t, a, "orders", fmt.Sprint(i))
	}
	cl2 := dial(t, c.ws)
	next(t, cl2, 2*time.Second)
	re := subscribe(t, cl2, fmt.Sprintf(`{"type":"sub","topic":"orders","since":10,"epoch":%q}`, sub.Epoch))
	if re.HistoryGone || re.Epoch != sub.Epoch {
		t.Fatalf("resume on another node: %+v (epoch was %s)", re, sub.Epoch)
	}
	got := readMsgs(t, cl2, "orders", 11, 15)
	if got[0] != "11" || got[14] != "25" {
		t.Fatalf("replayed %v", got)
	}
	publish(t, a, "orders", "26")
	readMsgs(t, cl2, "orders", 26, 1)
}

func TestClusterNATSRestartLosesNoAcknowledgedPublish(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, dir, -1)
	port := ns.Addr().(interface{ String() string }).String()
	a, b := startClusterNode(t, ns), startClusterNode(t, ns)
	for _, n := range []*testServer{a, b} {
		eventually(t, 10*time.Second, "node healthy", func() bool { return healthy(n) })
	}
	cl := dial(t, b.ws)
	next(t, cl, 2*time.Second)
	subscribe(t, cl, `{"type":"sub","topic":"ledger"}`)
	acked := 0
	for i := 0; i < 20; i++ {
		publish(t, a, "ledger", fmt.Sprint(i))
		acked++
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	eventually(t, 10*time.Second, "node reports unhealthy without NATS", func() bool { return !healthy(b) })
	if code, _ := post(t, a.admin+"/v1/publish", `{"topic":"ledger","data":"lost?"}`); code == 200 {
		t.Fatal("a publish was acknowledged with NATS down")
	}
	_, p, _ := strings.Cut(port, ":")
	var portN int
	fmt.Sscan(p, &portN)
	startNATS(t, dir, portN)
	eventually(t, 20*time.Second, "nodes healthy again", func() bool { return healthy(a) && healthy(b) })
	for i := 20; i < 40; i++ {
		publish(t, a, "ledger", fmt.Sprint(i))
		acked++
	}
	got := readMsgs(t, cl, "ledger", 1, acked)
	for i, d := range got {
		if d != fmt.Sprint(i) {
			t.Fatalf("message %d is %s", i+1, d)
		}
	}
}
