package gateway

import (
	"net"
	"net/netip"
	"runtime"
	"sync"
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
type listener struct {
	net.Listener
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
	return &listener{Listener: ln, stopped: make(chan struct{}), closed: make(chan struct{})}
}

func (l *listener) Accept() (net.Conn, error) {
	l.mu.Lock()
	p := l.pending
	l.armed, l.pending = true, nil
	l.mu.Unlock()
	if p != nil {
		_ = p.SetReadDeadline(time.Time{}) // harmless if it closed since
	}
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.last, l.armed = remoteAddrPort(c), false
		l.mu.Unlock()
	}
	if err != nil {
		select {
		case <-l.stopped:
			<-l.closed
			return nil, net.ErrClosed
		default:
		}
	}
	return c, err
}

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
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

// stop closes the socket; Accept then waits for Close.
func (l *listener) stop() {
	l.stopOnce.Do(func() {
		close(l.stopped)
		_ = l.Listener.Close()
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
