package gateway

import (
	"errors"
	"net"
	"syscall"
	"unsafe"

	"github.com/lesismal/nbio"
	"golang.org/x/sys/unix"

	"wspush/server/nbioconn"
)

// Raw accepts: a plain-TCP connection is accepted with accept4(2) and
// handed to nbio as an *nbio.Conn built here, instead of as a Go
// *net.TCPConn.
//
// Why. nbhttp turns every accepted net.Conn into an *nbio.Conn with
// nbio.NBConn, which dups the descriptor and closes the Go connection. So
// the standard accept's work is thrown away at once: registering the
// socket with the Go runtime's netpoller (epoll_ctl ADD) and, at the
// close, deregistering it (epoll_ctl DEL), getsockname, the dup and the
// close, and the netFD, TCPConn and two TCPAddr allocations: ≈ 3 µs of
// the server's CPU per connection in a connect ramp (docs/profiling.md).
// NBConn returns an *nbio.Conn it is given as it is; nbio then adds it to
// a poller as usual. The listening socket stays a Go listener, whose
// Accept does the waiting when nothing is pending (see accept).
//
// What the standard accept did is done here: the socket is non-blocking
// and close-on-exec (accept4 flags), TCP_NODELAY is set (Go's default);
// the remote address is the packed IPv4 form compactAddrs gives it later
// anyway (addrs.go), or a *net.TCPAddr for IPv6; the local address is the
// listener's (nothing in wspush reads it; getsockname would cost a system
// call). Sockets with kernel keepalive (-tcp-keepalive) and TLS listeners
// keep the standard accept.
//
// The Conn is made by package nbioconn (descriptor and type) and its
// addresses are written here (nbioAddrFields, addrs.go): nbio.Conn's
// fields are unexported. If either layout is unknown (another nbio
// version) every accept is the standard one; TestRawAcceptLayout fails
// then, so the change is seen.

// rawOK: raw accepts are possible with this nbio.
var rawOK = nbioconn.OK() && nbioAddrFields.ok

// rawAcceptor accepts on a Go TCP listener's socket with accept4.
type rawAcceptor struct {
	rc    syscall.RawConn
	local net.Addr
}

// newRawAcceptor returns an acceptor for ln, or nil if raw accepts are
// not possible (not a *net.TCPListener, or nbio's layout is unknown).
func newRawAcceptor(ln net.Listener) *rawAcceptor {
	tl, ok := ln.(*net.TCPListener)
	if !ok || !rawOK {
		return nil
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil
	}
	return &rawAcceptor{rc: rc, local: tl.Addr()}
}

// accept takes a pending connection, if there is one, and returns its
// descriptor and remote address; fd -1 and no error when there is none
// (EAGAIN). A Go listener's RawConn cannot wait (its Read is not
// supported), so then the caller waits in the listener's own Accept,
// which returns a standard connection: a quiet listener's next connection
// takes the standard path, those queued behind it in a burst the raw one.
// An error is the listener's (closed) or accept4's (EMFILE, …).
func (a *rawAcceptor) accept() (int, unix.Sockaddr, error) {
	var (
		nfd  = -1
		sa   unix.Sockaddr
		aerr error
	)
	err := a.rc.Control(func(fd uintptr) {
		for {
			nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if !errors.Is(aerr, unix.EINTR) && !errors.Is(aerr, unix.ECONNABORTED) { // retried, as the standard accept does
				return
			}
		}
	})
	switch {
	case err != nil:
		return -1, nil, err
	case errors.Is(aerr, unix.EAGAIN):
		return -1, nil, nil
	case aerr != nil:
		return -1, nil, &net.OpError{Op: "accept", Net: "tcp", Addr: a.local, Err: aerr}
	}
	return nfd, sa, nil
}

// conn makes the accepted socket fd an *nbio.Conn not yet in any poller.
func (a *rawAcceptor) conn(fd int, sa unix.Sockaddr) *nbio.Conn {
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	var remote net.Addr
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		remote = pack4(sa.Addr, uint16(sa.Port))
	case *unix.SockaddrInet6:
		ip := make(net.IP, net.IPv6len)
		copy(ip, sa.Addr[:])
		remote = &net.TCPAddr{IP: ip, Port: sa.Port, Zone: zoneName(sa.ZoneId)}
	}
	c := nbioconn.New(fd)
	p := unsafe.Pointer(c)
	*(*net.Addr)(unsafe.Add(p, nbioAddrFields.l)) = a.local
	*(*net.Addr)(unsafe.Add(p, nbioAddrFields.r)) = remote
	return c
}

func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return ""
}
