package gateway

import (
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// listener lets the gateway stop accepting without stopping nbio: nbio's
// accept loop retries on every Accept error until the engine shuts down,
// so after stop, Accept waits for Close instead of failing at once.
//
// It also mends a race in nbio v1.6.8 (nbhttp.Engine.AddConnNonTLSNonBlocking
// and its TLS twin): the accept goroutine registers a new connection with a
// poller and only then arms its HTTP read deadline (KeepaliveTime, 120 s).
// If the poller upgrades the connection in between, the upgrade's clearing
// of the deadline comes first and the re-armed deadline closes a healthy
// WebSocket 120 s later (0.13 % of connections at 4,000 accepts/s on a
// saturated host). nbio's accept goroutine runs Accept, addConn, Accept, …
// strictly in turn, so when Accept is entered the deadline of the
// connection accepted before is armed; a connection that was upgraded
// before that point has its deadline cleared then, by Accept.
//
// Admission by file descriptors (limits.go): open counts the sockets
// accepted and not yet closed, upgraded or not; at maxOpen a new one is
// answered 503 and closed right here, and Accept goes on. Accept errors
// (EMFILE when something else holds the files) are logged at a bounded
// rate and retried after a short backoff instead of being handed to nbio,
// which would log each one.
type listener struct {
	net.Listener
	maxOpen int64        // 0: no cap
	open    atomic.Int64 // sockets accepted and not closed
	refused func()       // counts a 503 (may be nil)
	errLog  acceptErrors
	raw     *rawAcceptor // set in bind: accept4 instead of Listener.Accept (rawaccept.go)

	stopOnce  sync.Once
	closeOnce sync.Once
	stopped   chan struct{}
	closed    chan struct{}

	mu      sync.Mutex     // guards last, armed, pending
	last    netip.AddrPort // remote address of the connection accepted last
	armed   bool           // Accept was entered since: last's deadline is set
	pending net.Conn       // last, upgraded while armed was false
}

func newListener(ln net.Listener) *listener {
	l := &listener{}
	l.init(ln)
	return l
}

// init readies l for ln; the gateway's listener is made in New and bound
// in Start.
func (l *listener) init(ln net.Listener) {
	l.Listener = ln
	if l.stopped == nil {
		l.stopped, l.closed = make(chan struct{}), make(chan struct{})
	}
}

func (l *listener) Accept() (net.Conn, error) {
	l.mu.Lock()
	p := l.pending
	l.armed, l.pending = true, nil
	l.mu.Unlock()
	if p != nil {
		_ = p.SetReadDeadline(time.Time{}) // harmless if it closed since
	}
	for {
		c, fd, sa, err := l.accept()
		if err != nil {
			select {
			case <-l.stopped:
				<-l.closed
				return nil, net.ErrClosed
			default:
			}
			l.errLog.failed(err, l.stopped)
			continue
		}
		l.errLog.ok()
		if n := l.open.Add(1); l.maxOpen > 0 && n > l.maxOpen {
			l.open.Add(-1)
			if c == nil {
				refuseFD(fd)
				_ = unix.Close(fd)
			} else {
				refuseSocket(c)
			}
			if l.refused != nil {
				l.refused()
			}
			continue
		}
		if c == nil {
			c = l.raw.conn(fd, sa)
		}
		l.mu.Lock()
		l.last, l.armed = remoteAddrPort(c), false
		l.mu.Unlock()
		return c, nil
	}
}

// accept takes the next connection: a Go net.Conn, or with raw accepts
// (c nil) a descriptor and its remote address (rawaccept.go).
func (l *listener) accept() (c net.Conn, fd int, sa unix.Sockaddr, err error) {
	if l.raw != nil {
		if fd, sa, err = l.raw.accept(); err != nil || fd >= 0 {
			return nil, fd, sa, err
		}
	}
	c, err = l.Listener.Accept()
	return c, -1, nil, err
}

// closedOne is called when an accepted socket has closed.
func (l *listener) closedOne() { l.open.Add(-1) }

// upgraded is called (on a poller) when c became a WebSocket: if c is the
// connection accepted last and its deadline is not armed yet, the next
// Accept clears it.
func (l *listener) upgraded(c net.Conn) {
	ap := remoteAddrPort(c)
	l.mu.Lock()
	if !l.armed && ap.IsValid() && ap == l.last {
		l.pending = c
	}
	l.mu.Unlock()
}

func remoteAddrPort(c net.Conn) netip.AddrPort {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case inet4Addr: // a raw accept's, or packed by compactAddrs
		return a.addrPort()
	}
	return netip.AddrPort{}
}

// stop closes the socket; Accept then waits for Close.
func (l *listener) stop() {
	l.stopOnce.Do(func() {
		close(l.stopped)
		if l.Listener != nil {
			_ = l.Listener.Close()
		}
	})
}

func (l *listener) Close() error {
	l.stop()
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func nbioCPUs() int { return runtime.NumCPU() }
