package engine

import (
	"bytes"
	"syscall"

	"github.com/lesismal/nbio"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

type dialOutcome struct {
	c          *Conn
	slot, tag  uint32
	took       time.Duration
	err        error
	sameCaller bool
}

// cbEngine starts an engine whose OnDial sends to the returned channel
// (room for n outcomes: it never blocks), and warms its poller up (see
// newEngine).
func cbEngine(t *testing.T, timeout time.Duration, n int) (*Engine, <-chan dialOutcome) {
	t.Helper()
	out := make(chan dialOutcome, n)
	e, err := New(Config{Handler: nopHandler{}, DialTimeout: timeout, Pollers: 1,
		OnDial: func(c *Conn, slot, tag uint32, took time.Duration, err error) {
			out <- dialOutcome{c: c, slot: slot, tag: tag, took: took, err: err, sameCaller: callerMark.Load() == goid()}
		}})
	if err != nil {
		t.Fatal(err)
	}
	warmUp(t, e)
	return e, out
}

// DialAsync returns at once and reports each dial once, with its slot,
// tag and latency, on another goroutine than its caller's: the upgrades
// (on the poller), a refused connect, and an upgrade the server never
// answers (the sweeper, after DialTimeout). A connection that came up is
// not closed by nbio's dial timer afterwards.
func TestDialAsyncReports(t *testing.T) {
	for _, raw := range []bool{true, false} {
		name := "raw"
		if !raw {
			name = "nbio"
		}
		t.Run(name, func(t *testing.T) {
			if raw && !rawDial {
				t.Fatal("nbio.Conn's layout is not the one rawdial.go knows")
			}
			saved := rawDial
			rawDial = raw && saved
			defer func() { rawDial = saved }()
			testDialAsyncReports(t)
		})
	}
}

func testDialAsyncReports(t *testing.T) {
	const n = 200
	const timeout = 300 * time.Millisecond
	e, out := cbEngine(t, timeout, n+2)
	up := rawUpgrader(t)
	callerMark.Store(goid())
	before := runtime.NumGoroutine()
	for i := range n {
		e.DialAsync(Target{Addr: up}, uint32(i), uint32(i)*3)
	}
	if g := runtime.NumGoroutine(); g > before+5 {
		t.Errorf("%d goroutines with %d dials in flight, %d before", g, n, before)
	}
	seen := make([]bool, n)
	for range n {
		o := recv(t, out)
		if o.err != nil || o.c == nil || o.took <= 0 || o.took > timeout {
			t.Fatalf("dial of slot %d: conn %v took %v err %v", o.slot, o.c != nil, o.took, o.err)
		}
		if o.sameCaller {
			t.Fatal("a successful dial was reported on the caller's goroutine")
		}
		if o.slot >= n || seen[o.slot] || o.tag != o.slot*3 || o.c.Slot != o.slot {
			t.Fatalf("slot %d tag %d conn slot %d: wrong or twice", o.slot, o.tag, o.c.Slot)
		}
		seen[o.slot] = true
	}
	if e.LastUpgrade().IsZero() {
		t.Error("LastUpgrade not set")
	}

	refused := closedPort(t)
	e.DialAsync(Target{Addr: refused}, 1, 7)
	if o := recv(t, out); Classify(o.err) != ClassRefused || o.c != nil || o.slot != 1 || o.tag != 7 {
		t.Fatalf("refused: conn %v slot %d tag %d err %v", o.c != nil, o.slot, o.tag, o.err)
	}

	eof := make(chan error, 1)
	silent := scriptServer(t, func(c net.Conn, _ string) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 64))
		eof <- err
	})
	start := time.Now()
	e.DialAsync(Target{Addr: silent}, 2, 9)
	o := recv(t, out)
	if Classify(o.err) != ClassTimeout || o.slot != 2 || o.tag != 9 {
		t.Fatalf("silent server: slot %d tag %d err %v, want a timeout", o.slot, o.tag, o.err)
	}
	if d := time.Since(start); d < timeout || d > timeout+time.Second {
		t.Fatalf("timed out after %v, want %v plus at most the sweep", d, timeout)
	}
	if o.sameCaller {
		t.Fatal("the timeout was reported on the caller's goroutine")
	}
	if err := <-eof; err != io.EOF {
		t.Fatalf("server read %v after the timeout, want EOF (socket shut down)", err)
	}
	// By now every upgraded connection is older than the dial timeout:
	// nbio's timer, if left armed, would have closed it.
	time.Sleep(timeout / 2)
	if l := e.Live(); l != n {
		t.Fatalf("%d connections live after the dial timeout, want %d", l, n)
	}
}

func recv(t *testing.T, out <-chan dialOutcome) dialOutcome {
	t.Helper()
	select {
	case o := <-out:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no dial reported in 10 s")
		return dialOutcome{}
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// callerMark is the id of the goroutine that calls DialAsync in a test.
var callerMark atomic.Int64

// goid is the current goroutine's id, from its stack's first line.
func goid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseInt(string(b), 10, 64)
	return id
}

// rawConnect's Conn (package nbioconn) is usable: nbio's layout is known
// and the Conn is a TCP one for the connecting socket.
func TestRawDialLayout(t *testing.T) {
	if !rawDial {
		t.Fatal("nbio.Conn has no fd int and typ ConnType fields: the raw dial is off")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := rawConnect(sockaddr4(ln.Addr().String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(nc.Hash())
	if nc.Type() != nbio.ConnTypeTCP || nc.Hash() <= 2 {
		t.Fatalf("type %d fd %d", nc.Type(), nc.Hash())
	}
	if sockaddr4("not-an-address") != nil {
		t.Fatal("a bad address parsed")
	}
}

// With a source address the dial is the raw one too (no standard-library
// dial, no dialer goroutine) and binds the socket there: the server sees
// each connection come from its source.
func TestRawDialBindsSource(t *testing.T) {
	from := make(chan string, 2)
	addr := scriptServer(t, func(c net.Conn, accept string) {
		from <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+accept+"\r\n\r\n")
		_, _ = c.Read(make([]byte, 64)) // until the client hangs up
	})
	e := newEngine(t, nopHandler{}, 5*time.Second, false)
	for _, src := range []net.IP{net.IPv4(127, 0, 0, 3), net.IPv4(127, 0, 0, 4)} {
		tg := Target{Addr: addr, Source: src}
		if !e.CanDialAsync(tg) {
			t.Fatalf("a dial from %v would take the standard-library path", src)
		}
		c, _, err := e.Dial(tg, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := <-from; got != src.String() {
			t.Errorf("the server saw the connection from %s, want %s", got, src)
		}
		c.Abort()
	}
	std := &Engine{cfg: Config{StdDial: true}} // not started: an nbio engine stopped before its poller ran spins
	if std.CanDialAsync(Target{Addr: addr}) || std.CanDialAsync(Target{Addr: addr, Source: net.IPv4(127, 0, 0, 3)}) {
		t.Error("StdDial: a dial would still take the callback path")
	}
}
