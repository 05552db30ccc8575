package gateway

import (
	"net"
	"syscall"
	"testing"

	"github.com/lesismal/nbio"
	"golang.org/x/sys/unix"
)

// Raw accepts need nbio.Conn's descriptor, type and address fields; with
// the nbio version in go.mod they must be found, or every accept silently
// goes the standard way again.
func TestRawAcceptLayout(t *testing.T) {
	if !rawOK {
		t.Fatal("nbio.Conn has no fd / typ / lAddr / rAddr fields of the expected types: raw accepts are off (rawaccept.go)")
	}
}

// A pending connection is accepted with accept4 as an *nbio.Conn (nbio's
// NBConn then keeps it as it is, no dup), set up as the standard accept
// would: non-blocking, TCP_NODELAY, its remote address.
func TestPendingConnectionAcceptedRaw(t *testing.T) {
	g := &Gateway{}
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
	nbc, ok := c.(*nbio.Conn)
	if !ok {
		t.Fatalf("accepted a %T, want an *nbio.Conn (raw accept)", c)
	}
	if got, want := nbc.RemoteAddr().String(), d.LocalAddr().String(); got != want {
		t.Fatalf("remote address %s, want %s", got, want)
	}
	// The deadline race's bookkeeping (listener.go) matches by address.
	if got, want := remoteAddrPort(c), d.LocalAddr().(*net.TCPAddr).AddrPort(); got != want {
		t.Fatalf("remoteAddrPort %v, want %v", got, want)
	}
	if nbc2, err := nbio.NBConn(c); err != nil || nbc2 != nbc {
		t.Fatalf("nbio.NBConn: %p %v, want the same conn %p (no dup)", nbc2, err, nbc)
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var nodelay, flags int
	var serr, ferr error
	_ = rc.Control(func(fd uintptr) {
		nodelay, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY)
		flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0)
	})
	if serr != nil || ferr != nil {
		t.Fatal(serr, ferr)
	}
	if nodelay == 0 || flags&unix.O_NONBLOCK == 0 {
		t.Fatalf("TCP_NODELAY %d, O_NONBLOCK %v; want both on", nodelay, flags&unix.O_NONBLOCK != 0)
	}
}
