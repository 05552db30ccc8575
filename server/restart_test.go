package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/internal/snapshot"
	"wspush/server/wire"
)

// The restart tests run the built binary with -state-dir, publish a steady
// stream over the HTTP API and have independent clients (gorilla/websocket)
// subscribe, then stop the server mid-stream, start it again on the same
// ports, and let the clients resume with since and epoch.

var restartTopics = []string{"r/a", "r/b", "r/c"}

// restartNode is one run of the binary.
type restartNode struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

func (n *restartNode) logged() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// restartPorts picks two distinct free loopback ports.
func restartPorts(t *testing.T) (string, string) {
	t.Helper()
	addrs := freeAddrs(t, "127.0.0.1", 2)
	return addrs[0], addrs[1]
}

// startNode runs the binary on ws and admin with state in dir, retrying
// briefly while the ports are still held, until it logs that it listens.
func startNode(t *testing.T, bin, ws, admin, dir string) *restartNode {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := &restartNode{done: make(chan struct{})}
		n.cmd = exec.Command(bin, "-addr", ws, "-admin-addr", admin, "-state-dir", dir, "-push-interval", "0",
			"-drain-rate", "40", "-shutdown-timeout", "5s")
		n.cmd.Env = []string{}
		stderr, err := n.cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		up := make(chan bool, 1)
		go func() {
			defer close(n.done)
			lines := bufio.NewScanner(stderr)
			listening := false
			for lines.Scan() {
				n.mu.Lock()
				n.log.WriteString(lines.Text() + "\n")
				n.mu.Unlock()
				if !listening && strings.Contains(lines.Text(), "msg=listening") {
					listening = true
					up <- true
				}
			}
			_ = n.cmd.Wait()
			if !listening {
				up <- false
			}
		}()
		if <-up {
			t.Cleanup(func() { _ = n.cmd.Process.Kill(); <-n.done })
			return n
		}
		<-n.done
		if !strings.Contains(n.logged(), "address already in use") || time.Now().After(deadline) {
			t.Fatalf("server did not start: %s", n.logged())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop signals the node and waits for it to exit.
func (n *restartNode) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("server still running 10 s after %v", sig)
	}
}

// got is one message a client received.
type got struct {
	epoch string
	seq   uint64
	n     int
}

// resumer is a client that subscribes to the topics in stream mode and,
// whenever its connection ends, reconnects and resumes each with since and
// epoch. It checks as it reads that every msg is the next seq of its
// epoch. The SSE tests (sseresume_test.go) run the same bookkeeping over
// /sse streams.
type resumer struct {
	ws    string
	mu    sync.Mutex
	epoch map[string]string
	last  map[string]uint64
	recv  map[string][]got
	gone  map[string]int // history_gone answers per topic
	// goneSame counts history_gone answers that kept the epoch the
	// client had (after a restart that lost the state, a new epoch is due).
	goneSame int
	errs     []string
	subbed   int           // subscribed answers on the current connection
	conn     io.Closer     // the current connection
	hold     chan struct{} // while open, the client does not reconnect
	stop     chan struct{}
	done     chan struct{}
}

func startResumer(ws string) *resumer {
	r := newResumer(ws)
	go r.run()
	return r
}

func newResumer(ws string) *resumer {
	return &resumer{ws: ws, epoch: map[string]string{}, last: map[string]uint64{}, recv: map[string][]got{},
		gone: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// close stops the client.
func (r *resumer) close() {
	close(r.stop)
	r.mu.Lock()
	if r.conn != nil {
		_ = r.conn.Close()
	}
	r.mu.Unlock()
	<-r.done
}

func (r *resumer) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// holdReconnects keeps the client from reconnecting until release is
// closed.
func (r *resumer) holdReconnects(release chan struct{}) {
	r.mu.Lock()
	r.hold = release
	r.mu.Unlock()
}

// waitHold waits while reconnects are held; false if the client stopped.
func (r *resumer) waitHold() bool {
	r.mu.Lock()
	h := r.hold
	r.mu.Unlock()
	select {
	case <-r.stop:
		return false
	default:
	}
	if h != nil {
		select {
		case <-h:
		case <-r.stop:
			return false
		}
	}
	return true
}

func (r *resumer) run() {
	defer close(r.done)
	for {
		if !r.waitHold() {
			return
		}
		c, _, err := websocket.DefaultDialer.Dial(r.ws, nil)
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		r.mu.Lock()
		r.conn = c
		r.mu.Unlock()
		select {
		case <-r.stop:
		default:
			r.session(c)
		}
		_ = c.Close()
	}
}

// session subscribes (resuming where it has an epoch) and reads until the
// connection ends or the test stops the client.
func (r *resumer) session(c *websocket.Conn) {
	r.mu.Lock()
	r.subbed = 0
	for _, topic := range restartTopics {
		sub := map[string]any{"type": "sub", "topic": topic, "mode": "stream"}
		if e := r.epoch[topic]; e != "" {
			sub["since"], sub["epoch"] = r.last[topic], e
		}
		if err := c.WriteJSON(sub); err != nil {
			r.mu.Unlock()
			return
		}
	}
	r.mu.Unlock()
	for {
		_, b, err := c.ReadMessage() // ends when the test closes c (close)
		if err != nil {
			return
		}
		var m wire.ServerMsg
		if err := wire.ParseServer(b, &m); err != nil {
			r.mu.Lock()
			r.fail("bad frame %q: %v", b, err)
			r.mu.Unlock()
			return
		}
		r.handle(m)
	}
}

func (r *resumer) handle(m wire.ServerMsg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch m.Type {
	case wire.TypeSubscribed:
		r.subbed++
		if m.HistoryGone {
			r.gone[m.Topic]++
			if r.epoch[m.Topic] == m.Epoch {
				r.goneSame++
			}
		} else if e := r.epoch[m.Topic]; e != "" && e != m.Epoch {
			r.fail("%s: epoch %s became %s without history_gone", m.Topic, e, m.Epoch)
		}
		if m.HistoryGone || r.epoch[m.Topic] == "" {
			r.epoch[m.Topic], r.last[m.Topic] = m.Epoch, m.Seq
		}
	case wire.TypeMsg:
		var v struct{ N int }
		if err := json.Unmarshal(m.Data, &v); err != nil {
			r.fail("%s: data %s: %v", m.Topic, m.Data, err)
			return
		}
		if m.Seq != r.last[m.Topic]+1 {
			r.fail("%s: seq %d after %d in epoch %s (value %d)", m.Topic, m.Seq, r.last[m.Topic], r.epoch[m.Topic], v.N)
		}
		r.last[m.Topic] = m.Seq
		r.recv[m.Topic] = append(r.recv[m.Topic], got{r.epoch[m.Topic], m.Seq, v.N})
	}
}

// lastN returns the value of the last message received on topic, or -1.
func (r *resumer) lastN(topic string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.recv[topic]; len(g) > 0 {
		return g[len(g)-1].n
	}
	return -1
}

func (r *resumer) subscribed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.subbed == len(restartTopics)
}

// restartRig is a state directory, two ports, clients and a publisher.
type restartRig struct {
	bin, ws, admin, dir string
	clients             []*resumer
	pub                 *publisher
}

func newRestartRig(t *testing.T) (*restartRig, *restartNode) {
	t.Helper()
	return newRestartRigOf(t, func(addr string) *resumer { return startResumer("ws://" + addr + "/ws") })
}

// newRestartRigOf is newRestartRig with clients made by client (given the
// server's address).
func newRestartRigOf(t *testing.T, client func(addr string) *resumer) (*restartRig, *restartNode) {
	t.Helper()
	rig := &restartRig{bin: buildServer(t), dir: t.TempDir()}
	rig.ws, rig.admin = restartPorts(t)
	n := startNode(t, rig.bin, rig.ws, rig.admin, rig.dir)
	for range 20 {
		rig.clients = append(rig.clients, client(rig.ws))
	}
	t.Cleanup(func() {
		for _, c := range rig.clients {
			c.close()
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for _, c := range rig.clients {
		for !c.subscribed() {
			if time.Now().After(deadline) {
				t.Fatal("clients not subscribed")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	rig.pub = startPublisher(rig.admin)
	t.Cleanup(func() {
		select {
		case <-rig.pub.stop:
		default:
			close(rig.pub.stop)
		}
		<-rig.pub.done
	})
	return rig, n
}

// settle stops the publisher and waits until every client has the last
// acknowledged value of every topic.
func (rig *restartRig) settle(t *testing.T) {
	t.Helper()
	close(rig.pub.stop)
	<-rig.pub.done
	deadline := time.Now().Add(15 * time.Second)
	for _, topic := range restartTopics {
		order := rig.pub.order[topic]
		want := order[len(order)-1]
		for i, c := range rig.clients {
			for c.lastN(topic) != want {
				if time.Now().After(deadline) {
					t.Fatalf("client %d, %s: last value %d, want %d", i, topic, c.lastN(topic), want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// checkConsistent checks what every client got against what was
// acknowledged: the reader's own checks passed, every value has the topic
// and seq it was acknowledged with, and no epoch and seq carried two
// values.
func (rig *restartRig) checkConsistent(t *testing.T) {
	t.Helper()
	seen := map[string]int{} // topic epoch seq -> value
	for i, c := range rig.clients {
		c.mu.Lock()
		if len(c.errs) > 0 {
			t.Errorf("client %d: %s", i, strings.Join(c.errs, "; "))
		}
		for topic, gs := range c.recv {
			for _, g := range gs {
				if a, ok := rig.pub.acked[g.n]; ok && (a.topic != topic || a.seq != g.seq) {
					t.Errorf("client %d: value %d as %s seq %d, acknowledged as %s seq %d", i, g.n, topic, g.seq, a.topic, a.seq)
				}
				key := fmt.Sprintf("%s %s %d", topic, g.epoch, g.seq)
				if n, ok := seen[key]; ok && n != g.n {
					t.Errorf("%s carried values %d and %d", key, n, g.n)
				}
				seen[key] = g.n
			}
		}
		c.mu.Unlock()
	}
}

// checkAll checks that client c got exactly the acknowledged values of
// topic, in order, from the first one on. Values never acknowledged (the
// publisher gave up waiting for the answer on a loaded machine; the seq
// checks cover them) are left out.
func (rig *restartRig) checkAll(t *testing.T, i int, topic string) {
	t.Helper()
	c := rig.clients[i]
	c.mu.Lock()
	defer c.mu.Unlock()
	var ns []int
	for _, g := range c.recv[topic] {
		if _, ok := rig.pub.acked[g.n]; ok {
			ns = append(ns, g.n)
		}
	}
	if want := rig.pub.order[topic]; fmt.Sprint(ns) != fmt.Sprint(want) {
		t.Errorf("client %d, %s: got %d values, want the %d acknowledged\ngot  %v\nwant %v", i, topic, len(ns), len(want), ns, want)
	}
}

var stateSaved = regexp.MustCompile(`msg="state saved" topics=3 messages=(\d+)`)

// SIGTERM mid-stream, start again: every acknowledged message reaches
// every client exactly once, in order, with no history_gone; publishes
// acknowledged during the drain are among them.
func TestRestartSIGTERMResumesEverything(t *testing.T) {
	rig, n := newRestartRig(t)
	restartSIGTERM(t, rig, n)
}

func restartSIGTERM(t *testing.T, rig *restartRig, n *restartNode) {
	t.Helper()
	rig.pub.waitAcked(t, 300)
	before := rig.pub.count()
	n.stop(t, syscall.SIGTERM)
	if code := n.cmd.ProcessState.ExitCode(); code != 0 || !stateSaved.MatchString(n.logged()) {
		t.Fatalf("first run: exit %d, log:\n%s", code, n.logged())
	}
	// The drain (20 clients at 40 a second) took half a second, in which
	// the publish API still answered.
	if during := rig.pub.count() - before; during < 10 {
		t.Fatalf("%d publishes acknowledged during the drain, want some", during)
	}
	n2 := startNode(t, rig.bin, rig.ws, rig.admin, rig.dir)
	if !strings.Contains(n2.logged(), `msg="state loaded" topics=3`) {
		t.Fatalf("second run did not load the state:\n%s", n2.logged())
	}
	rig.pub.waitAcked(t, 300)
	rig.settle(t)
	rig.checkConsistent(t)
	for i, c := range rig.clients {
		for _, topic := range restartTopics {
			rig.checkAll(t, i, topic)
			c.mu.Lock()
			if c.gone[topic] != 0 {
				t.Errorf("client %d, %s: history_gone", i, topic)
			}
			c.mu.Unlock()
		}
	}
	n2.stop(t, syscall.SIGTERM)
}

// A graceful restart, then SIGKILL mid-stream: the state file the second
// run loaded is gone, so the third run starts new epochs. Every client
// either gets everything or an explicit history_gone, and never a value
// under a seq it was not acknowledged with. Half the clients come back
// only once the new epochs have passed the seqs they had, so that a resume
// that ignored the epoch would replay the wrong messages (rather than be
// refused for a since beyond the topic's end).
func TestRestartSIGKILLNeverWrongReplay(t *testing.T) {
	rig, n := newRestartRig(t)
	restartSIGKILL(t, rig, n)
}

// restartSIGKILL also checks that every history_gone came with a new
// epoch.
func restartSIGKILL(t *testing.T, rig *restartRig, n *restartNode) {
	t.Helper()
	rig.pub.waitAcked(t, 200)
	n.stop(t, syscall.SIGTERM)
	n2 := startNode(t, rig.bin, rig.ws, rig.admin, rig.dir)
	rig.pub.waitAcked(t, 200)
	release := make(chan struct{})
	for i, c := range rig.clients {
		if i%2 == 1 {
			c.holdReconnects(release)
		}
	}
	n2.stop(t, syscall.SIGKILL)
	killed := rig.pub.count()
	n3 := startNode(t, rig.bin, rig.ws, rig.admin, rig.dir)
	if !strings.Contains(n3.logged(), "no saved state") {
		t.Fatalf("third run after SIGKILL:\n%s", n3.logged())
	}
	for rig.pub.count() < 2*killed+60 { // each topic's new epoch past the old seqs
		rig.pub.waitAcked(t, 100)
	}
	close(release)
	rig.pub.waitAcked(t, 200)
	rig.settle(t)
	rig.checkConsistent(t)
	for i, c := range rig.clients {
		for _, topic := range restartTopics {
			c.mu.Lock()
			gone := c.gone[topic]
			c.mu.Unlock()
			if gone == 0 {
				rig.checkAll(t, i, topic) // then it must have everything
			}
		}
		c.mu.Lock()
		if c.goneSame != 0 {
			t.Errorf("client %d: %d history_gone answers kept the old epoch", i, c.goneSame)
		}
		c.mu.Unlock()
	}
	n3.stop(t, syscall.SIGTERM)
}

// A state file that fails its checks stops the start (exit 1, one clear
// line) and stays where it is; -state-dir is refused with -nats.
func TestRestartRefusesBadStateFile(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	path := filepath.Join(dir, snapshot.FileName)
	if err := os.WriteFile(path, []byte("WSPUSHST\x01\x00\x00\x00\x00\x01\x00garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runBinary(t, bin, "-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-state-dir", dir)
	want := "wspush: snapshot: " + path + ": corrupt state file: "
	if code != 1 || !strings.HasPrefix(errOut, want) {
		t.Fatalf("corrupt file: exit %d, stderr %q; want 1 and %q…", code, errOut, want)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the refused file is gone: %v", err)
	}
	if _, err := parseConfig([]string{"-state-dir", dir, "-nats", "nats://127.0.0.1:4222"}, func(string) string { return "" }, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-state-dir is for a single node") {
		t.Fatalf("-state-dir with -nats: %v", err)
	}
}
