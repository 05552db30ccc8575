package gateway

import (
	"net"
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
