package engine

// The raw dial: on the async path wsload makes the socket (binds it to the
// source address, if one is set) and starts the connect itself, and hands nbio an *nbio.Conn it
// built, instead of calling nbio's DialAsyncTimeout. Per connection that
// leaves out, of nbio's dial: parsing the address string (strings.Split,
// net.ResolveTCPAddr: the address is parsed once per target here), the
// two fcntl calls of SetNonblock (socket(2) takes SOCK_NONBLOCK),
// getsockname and the local address nbio keeps, a Go timer for the dial
// timeout (the sweeper covers it), the closure, and the write-readiness
// round trip: nbio registers a dialled socket for EPOLLOUT, calls back
// when it is writable and re-registers it for reads (epoll_ctl MOD).
// Here the socket is registered for reads once (Engine.AddConn) and the
// request written at once: on loopback the connect has completed by the
// time connect(2) returns; when it has not (a full backlog), the write
// finds EAGAIN and nbio sends the request when the socket becomes
// writable, as for any write it could not finish. A failed connect shows
// as a hang-up (nbio closes, onClose reports) or as the write's error.
//
// The *nbio.Conn is made by package nbioconn (nbio.Conn's fields are
// unexported). If nbio's layout is unknown (another nbio version), every
// dial takes DialAsyncTimeout, or the standard-library dial with a source.

import (
	"errors"
	"net"
	"sync"
	"syscall"

	"github.com/lesismal/nbio"

	"wspush/server/nbioconn"
)

// rawDial: the raw dial is possible with this nbio (a variable so that a
// test can take nbio's dial instead).
var rawDial = nbioconn.OK()

// sockaddrs caches each target address's parsed form (few per run):
// string → *syscall.SockaddrInet4, or nil when it is not IPv4.
var sockaddrs sync.Map

func sockaddr4(addr string) *syscall.SockaddrInet4 {
	if v, ok := sockaddrs.Load(addr); ok {
		sa, _ := v.(*syscall.SockaddrInet4)
		return sa
	}
	var sa *syscall.SockaddrInet4
	if a, err := net.ResolveTCPAddr("tcp4", addr); err == nil {
		if ip4 := a.IP.To4(); ip4 != nil {
			sa = &syscall.SockaddrInet4{Port: a.Port, Addr: [4]byte(ip4)}
		}
	}
	sockaddrs.Store(addr, sa)
	return sa
}

// source4 is t.Source as a bind address (port 0: chosen at connect
// time, IP_BIND_ADDRESS_NO_PORT), or nil for none.
func source4(ip net.IP) *syscall.SockaddrInet4 {
	if ip == nil {
		return nil
	}
	return &syscall.SockaddrInet4{Addr: [4]byte(ip.To4())}
}

// rawOK says whether t can take the raw dial: not StdDial, nbio's layout
// is known, the address is IPv4 and so is the source, if any.
func (e *Engine) rawOK(t Target) bool {
	return !e.cfg.StdDial && rawDial && sockaddr4(t.Addr) != nil && (t.Source == nil || t.Source.To4() != nil)
}

// CanDialAsync says whether a dial to t takes the callback path (DialAsync
// returns at once, the outcome comes through Config.OnDial on the
// goroutine that learns it): the raw dial, or nbio's when no source is
// set. Otherwise the dial is the standard library's, on the caller.
func (e *Engine) CanDialAsync(t Target) bool {
	return !e.cfg.StdDial && (t.Source == nil || e.rawOK(t))
}

// rawConnect makes a non-blocking TCP socket, binds it to src when set
// (its port chosen by connect, per destination, as bindNoPort does for the
// standard-library dial), starts its connect to sa and returns it as an
// *nbio.Conn not yet in any poller.
func rawConnect(sa, src *syscall.SockaddrInet4) (*nbio.Conn, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if src != nil {
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, ipBindAddressNoPort, 1) // older kernels lack it: not fatal
		if err := syscall.Bind(fd, src); err != nil {
			_ = syscall.Close(fd)
			return nil, err
		}
	}
	if err := syscall.Connect(fd, sa); err != nil && err != syscall.EINPROGRESS && err != syscall.EINTR {
		_ = syscall.Close(fd)
		return nil, err
	}
	return nbioconn.New(fd), nil
}

// startRaw is startDial's raw path for d (listed, published) to t; false
// when t cannot take it (rawOK; the caller takes nbio's dial then).
func (e *Engine) startRaw(d *dialState, t Target) bool {
	if !e.rawOK(t) {
		return false
	}
	nc, err := rawConnect(sockaddr4(t.Addr), source4(t.Source))
	if err != nil {
		e.finish(d, dialResult{err: err})
		return true
	}
	if !d.attach(nc, e.cfg.Pollers) {
		_ = syscall.Close(nc.Hash()) // abandoned already: not in a poller yet
		return true
	}
	e.published.Add(1)
	if _, err := e.nb.AddConn(nc); err != nil {
		// nbio closed it (a descriptor beyond its table, an epoll error);
		// onClose may have reported it first
		e.finish(d, dialResult{err: err})
		return true
	}
	// The write runs beside the poller, which may have closed the socket
	// already (a refused connect's hang-up): then onClose reports the
	// error the poller saw, not the write's "closed".
	if err := e.sendRequest(d, nc); err != nil && !errors.Is(err, net.ErrClosed) {
		e.finish(d, dialResult{err: err}) // the failed write closed the socket
	}
	return true
}
