package peers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// raceEnabled is set under -race; the Go peers are then built with -race
// too, so a data race in a peer fails its test (exit status 66).
var raceEnabled bool

const (
	interval = 100 * time.Millisecond
	nClients = 3
	waitMsg  = 5 * time.Second // longest wait for any one expected message
)

// TestPeers builds every peer, starts it on free loopback ports and checks
// the shared contract from README.md against it.
func TestPeers(t *testing.T) {
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./gorilla", "./gws", "./floor")
	build := exec.Command("go", args...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	peers := []struct {
		name string
		argv func(t *testing.T) []string
	}{
		{"gorilla", func(*testing.T) []string { return []string{filepath.Join(bin, "gorilla")} }},
		{"gws", func(*testing.T) []string { return []string{filepath.Join(bin, "gws")} }},
		{"floor", func(*testing.T) []string { return []string{filepath.Join(bin, "floor")} }},
		{"node-ws", nodeArgv},
	}
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			argv := append(p.argv(t), "-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-push-interval", interval.String())
			checkPeer(t, argv)
		})
	}
}

// nodeArgv returns the node-ws command line, installing its dependencies
// first when node_modules is missing; it skips when that cannot be done.
func nodeArgv(t *testing.T) []string {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node-ws: node is not installed")
	}
	dir, err := filepath.Abs("node-ws")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "npm", "ci", "--prefix", dir, "--no-audit", "--no-fund").CombinedOutput()
		if err != nil {
			t.Skipf("node-ws: node_modules is missing and `npm ci --prefix %s` failed: %v\n%s", dir, err, out)
		}
	}
	return []string{node, filepath.Join(dir, "server.js")}
}

// peer is a running peer process.
type peer struct {
	cmd       *exec.Cmd
	ws, admin string
	mu        sync.Mutex
	stderr    bytes.Buffer
	exited    chan struct{}
	exitErr   error // set before exited is closed
}

func startPeer(t *testing.T, argv []string) *peer {
	t.Helper()
	p := &peer{cmd: exec.Command(argv[0], argv[1:]...), exited: make(chan struct{})}
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			var ws, admin string
			if _, err := fmt.Sscanf(line, "listening ws=%s admin=%s", &ws, &admin); err == nil {
				select {
				case ready <- [2]string{ws, admin}:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pipe)
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("peer stderr:\n%s", p.log())
		}
	})
	select {
	case a := <-ready:
		p.ws, p.admin = a[0], a[1]
	case <-p.exited:
		t.Fatalf("peer exited before listening: %v", p.exitErr)
	case <-time.After(20 * time.Second):
		t.Fatal("peer did not print its listening line within 20s")
	}
	return p
}

func (p *peer) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// stop sends SIGTERM and expects a clean exit.
func (p *peer) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.exitErr != nil {
			t.Errorf("peer exit after SIGTERM: %v", p.exitErr)
		}
	case <-time.After(10 * time.Second):
		t.Error("peer still running 10s after SIGTERM")
	}
}

// client is one WebSocket connection with a reader goroutine.
type client struct {
	name    string
	slow    bool // reads nothing until resumed
	conn    *websocket.Conn
	msgs    chan recv
	done    chan struct{}
	lastSeq int64
	lastDue int64
}

type recv struct {
	at   time.Time
	data []byte
	err  error
}

// dial connects a client. A slow one has a tiny socket receive buffer and
// reads nothing until resume is closed.
func dial(t *testing.T, url, name string, resume <-chan struct{}) *client {
	t.Helper()
	// A small write buffer makes gorilla fragment any longer message.
	dialer := websocket.Dialer{WriteBufferSize: 512, HandshakeTimeout: 10 * time.Second}
	slow := resume != nil
	if slow {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}
		dialer.NetDialContext = nd.DialContext
	} else {
		ready := make(chan struct{})
		close(ready)
		resume = ready
	}
	conn, resp, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, url, err)
	}
	_ = resp.Body.Close()
	c := &client{name: name, slow: slow, conn: conn, msgs: make(chan recv, 256), done: make(chan struct{})}
	go func() {
		select {
		case <-resume:
		case <-c.done:
			return
		}
		for {
			_, data, err := conn.ReadMessage()
			select {
			case c.msgs <- recv{time.Now(), data, err}:
			case <-c.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(c.done)
		_ = conn.Close()
	})
	return c
}

// next returns the next message, decoded, and when it arrived.
func (c *client) next(t *testing.T) (map[string]any, recv) {
	t.Helper()
	select {
	case r := <-c.msgs:
		if r.err != nil {
			t.Fatalf("%s: read: %v", c.name, r.err)
		}
		dec := json.NewDecoder(bytes.NewReader(r.data))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%s: message %q is not a JSON object: %v", c.name, r.data, err)
		}
		return m, r
	case <-time.After(waitMsg):
		t.Fatalf("%s: no message within %v", c.name, waitMsg)
	}
	return nil, recv{}
}

// until reads messages, checking every tick on the way, until match takes
// one, which it returns.
func (c *client) until(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(waitMsg)
	for time.Now().Before(deadline) {
		m, r := c.next(t)
		if m["type"] == "tick" {
			c.checkTick(t, m, r)
		}
		if match(m) {
			return m
		}
	}
	t.Fatalf("%s: no %s within %v", c.name, what, waitMsg)
	return nil
}

func (c *client) checkTick(t *testing.T, m map[string]any, r recv) {
	t.Helper()
	seq, err1 := m["seq"].(json.Number).Int64()
	due, err2 := m["due"].(json.Number).Int64()
	if err1 != nil || err2 != nil || len(m) != 3 {
		t.Fatalf("%s: bad tick %s", c.name, r.data)
	}
	if seq != c.lastSeq+1 {
		t.Errorf("%s: tick seq %d after %d", c.name, seq, c.lastSeq)
	}
	if c.lastSeq > 0 && time.Duration(due-c.lastDue) != time.Duration(seq-c.lastSeq)*interval {
		t.Errorf("%s: tick %d due %v after the previous one, want %v", c.name, seq, time.Duration(due-c.lastDue), interval)
	}
	// A slow client's ticks wait in buffers while it does not read.
	if lag := time.Duration(r.at.UnixNano() - due); lag.Abs() >= time.Second && !c.slow {
		t.Errorf("%s: tick %d received %v after its due time", c.name, seq, lag)
	}
	c.lastSeq, c.lastDue = seq, due
}

// broadcast posts {"data":data} and expects it delivered to want clients;
// it returns the time just before and just after the request.
func broadcast(t *testing.T, p *peer, data string, want int) (before, after int64) {
	t.Helper()
	before = time.Now().UnixNano()
	resp, err := http.Post("http://"+p.admin+"/v1/broadcast", "application/json", strings.NewReader(`{"data":`+data+`}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	after = time.Now().UnixNano()
	var got struct{ Delivered int }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Delivered != want {
		t.Fatalf("broadcast: %s %.200s, want 200 with delivered %d", resp.Status, body, want)
	}
	return before, after
}

// waitConns polls /healthz until the peer counts n connections: a peer may
// answer the handshake a moment before it adds the connection to its set.
func waitConns(t *testing.T, p *peer, n int) {
	t.Helper()
	var got struct{ Connections int }
	for deadline := time.Now().Add(waitMsg); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		resp, err := http.Get("http://" + p.admin + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		_ = resp.Body.Close()
		if err == nil && got.Connections == n {
			return
		}
	}
	t.Fatalf("/healthz counts %d connections, want %d", got.Connections, n)
}

// checkMsg reads up to the next broadcast and checks it.
func checkMsg(t *testing.T, c *client, seq, before, after int64, data string) {
	t.Helper()
	var want any
	_ = json.Unmarshal([]byte(data), &want)
	m := c.until(t, "broadcast", func(m map[string]any) bool { return m["type"] == "msg" })
	gotSeq, _ := m["seq"].(json.Number).Int64()
	ts, _ := m["ts"].(json.Number).Int64()
	raw, _ := json.Marshal(m["data"])
	var got any
	_ = json.Unmarshal(raw, &got)
	if m["topic"] != "" || gotSeq != seq || ts < before || ts > after || !reflect.DeepEqual(got, want) || len(m) != 5 {
		t.Errorf("%s: broadcast %d arrived as %.200v", c.name, seq, m)
	}
}

func checkPeer(t *testing.T, argv []string) {
	p := startPeer(t, argv)

	clients := make([]*client, nClients)
	ids := map[any]bool{}
	for i := range clients {
		c := dial(t, "ws://"+p.ws+"/ws", fmt.Sprintf("client %d", i), nil)
		clients[i] = c
		m, r := c.next(t)
		want := map[string]any{"type": "welcome", "id": m["id"], "interval_ms": json.Number("100"), "text": "Welcome to the server!"}
		if id, _ := m["id"].(string); id == "" || !reflect.DeepEqual(m, want) {
			t.Fatalf("%s: first message %s, want a welcome", c.name, r.data)
		}
		if ids[m["id"]] {
			t.Errorf("%s: welcome id %v is not unique", c.name, m["id"])
		}
		ids[m["id"]] = true
	}

	// Three ticks each, seq 1, 2, 3 (checkTick checks seq, due and lag).
	for _, c := range clients {
		for range 3 {
			m, r := c.next(t)
			if m["type"] != "tick" {
				t.Fatalf("%s: got %s, want a tick", c.name, r.data)
			}
			c.checkTick(t, m, r)
		}
	}

	// ping → pong, with ids of several kinds; the long one arrives in
	// fragments and its pong needs a 16-bit frame length.
	long := `"` + strings.Repeat("x", 3000) + `"`
	for i, id := range []string{`42`, `"abc"`, `{"k":[1,2]}`, long} {
		c := clients[i%nClients]
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":`+id+`}`)); err != nil {
			t.Fatal(err)
		}
		var want any
		dec := json.NewDecoder(strings.NewReader(id))
		dec.UseNumber()
		_ = dec.Decode(&want)
		c.until(t, "pong", func(m map[string]any) bool {
			return m["type"] == "pong" && reflect.DeepEqual(m["id"], want) && len(m) == 2
		})
	}

	// Broadcasts reach every client, with a global seq.
	for seq, data := range []string{`{"hello":["world",1,true,null]}`, `"x"`} {
		before, after := broadcast(t, p, data, nClients)
		for _, c := range clients {
			checkMsg(t, c, int64(seq+1), before, after, data)
		}
	}

	// A client that reads nothing for a while still gets everything, in
	// order, once it reads: welcome, contiguous ticks and five broadcasts
	// too big for its socket buffers.
	resume := make(chan struct{})
	slow := dial(t, "ws://"+p.ws+"/ws", "slow client", resume)
	waitConns(t, p, nClients+1) // the slow client reads no welcome to tell
	big := `"` + strings.Repeat("y", 100_000) + `"`
	var times [][2]int64
	for range 5 {
		before, after := broadcast(t, p, big, nClients+1)
		times = append(times, [2]int64{before, after})
	}
	close(resume)
	if m, r := slow.next(t); m["type"] != "welcome" {
		t.Fatalf("%s: first message %.100s, want a welcome", slow.name, r.data)
	}
	for i, ts := range times {
		for _, c := range append(clients, slow) {
			checkMsg(t, c, int64(i+3), ts[0], ts[1], big)
		}
	}
	resp, err := http.Post("http://"+p.admin+"/v1/broadcast", "application/json", strings.NewReader(`{"nodata":1}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("broadcast without data: %s, want 400", resp.Status)
	}

	resp, err = http.Get("http://" + p.ws + "/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing-here on the WebSocket port: %s, want 404", resp.Status)
	}

	resp, err = http.Get("http://" + p.admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %s", resp.Status)
	}

	// Ticks go on after all that.
	for _, c := range append(clients, slow) {
		seq := c.lastSeq
		c.until(t, "tick", func(m map[string]any) bool { return m["type"] == "tick" && c.lastSeq > seq })
	}
	p.stop(t)
}
