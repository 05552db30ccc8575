package gateway

import (
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// keepAlive reports SO_KEEPALIVE and TCP_KEEPIDLE (seconds) of an accepted socket.
func keepAlive(t *testing.T, c net.Conn) (on bool, idle int) {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ka, ki int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		ka, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		if serr == nil {
			ki, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return ka != 0, ki
}

func accepted(t *testing.T, cfg Config) net.Conn {
	t.Helper()
	g := &Gateway{cfg: cfg}
	ln, err := g.listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestTCPKeepAliveOffByDefault(t *testing.T) {
	if on, _ := keepAlive(t, accepted(t, Config{})); on {
		t.Fatal("accepted socket has SO_KEEPALIVE on by default; want off (liveness is the hub's pings)")
	}
}

func TestTCPKeepAlivePeriod(t *testing.T) {
	on, idle := keepAlive(t, accepted(t, Config{TCPKeepAlive: 45 * time.Second}))
	if !on || idle != 45 {
		t.Fatalf("SO_KEEPALIVE %v, TCP_KEEPIDLE %d s; want on, 45 s", on, idle)
	}
}

// fakeConn records the read deadlines set on it.
type fakeConn struct {
	net.Conn // nil: only the methods below are used
	remote   *net.TCPAddr
	mu       sync.Mutex
	cleared  int
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.IsZero() {
		c.cleared++
	}
	return nil
}
func (c *fakeConn) clears() int { c.mu.Lock(); defer c.mu.Unlock(); return c.cleared }

// fakeListener hands out the given conns, one per Accept.
type fakeListener struct {
	net.Listener
	conns chan net.Conn
}

func (l *fakeListener) Accept() (net.Conn, error) { return <-l.conns, nil }

func newFakeConn(port int) *fakeConn {
	return &fakeConn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: port}}
}

// nbio arms a new connection's HTTP read deadline after registering it with
// a poller; a connection upgraded before that must have the deadline
// cleared again when nbio's accept loop comes back to Accept.
func TestUpgradeBeforeDeadlineIsArmed(t *testing.T) {
	inner := &fakeListener{conns: make(chan net.Conn, 3)}
	l := newListener(inner)
	a, b, c := newFakeConn(1001), newFakeConn(1002), newFakeConn(1003)
	inner.conns <- a
	inner.conns <- b

	if got, _ := l.Accept(); got != a {
		t.Fatal("accept a")
	}
	// Race: the poller upgrades a before nbio's accept goroutine has armed
	// a's deadline (it has not come back to Accept yet).
	l.upgraded(a)
	if a.clears() != 0 {
		t.Fatal("cleared before the deadline was armed")
	}
	if got, _ := l.Accept(); got != b { // a's deadline is armed by now
		t.Fatal("accept b")
	}
	if a.clears() != 1 {
		t.Fatalf("a's re-armed deadline cleared %d times, want 1", a.clears())
	}
	// Normal order: nbio comes back to Accept (b's deadline is armed) and
	// waits there; then b is upgraded, whose own clearing suffices.
	got := make(chan net.Conn)
	go func() { c, _ := l.Accept(); got <- c }()
	for deadline := time.Now().Add(5 * time.Second); ; {
		l.mu.Lock()
		armed := l.armed
		l.mu.Unlock()
		if armed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Accept did not mark b's deadline armed")
		}
		time.Sleep(time.Millisecond)
	}
	l.upgraded(b)
	inner.conns <- c
	if <-got != c {
		t.Fatal("accept c")
	}
	if b.clears() != 0 {
		t.Fatal("b cleared by the listener although its upgrade came after the deadline")
	}
	// An upgrade of a connection other than the last accepted one is not
	// racing either.
	l.upgraded(newFakeConn(1001))
	l.mu.Lock()
	pending := l.pending
	l.mu.Unlock()
	if pending != nil {
		t.Fatal("a connection other than the last accepted one is pending")
	}
}
