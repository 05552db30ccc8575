package gateway

import (
	"net"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
	"golang.org/x/sys/unix"
)

// Only a socket's poller goroutine may close it.
//
// nbio's poller handles the events of one epoll_wait after it returns and
// finds each connection by its descriptor number. A socket closed by any
// other goroutine inside that window frees its number, the next accepted
// socket gets it, and the old socket's pending hang-up is applied to the
// new connection, which nbio then closes: a healthy client fails its
// upgrade or loses its connection. The poller itself is safe: epoll
// reports each descriptor at most once per wait, so a number the poller
// frees is not looked up again in the same batch.
//
// So the gateway never closes a socket from another goroutine (nbio's
// executor, a hub shard, the edge's sweep): shutdownSocket shuts it down
// in both directions instead. Unsent bytes still go out, followed by FIN;
// the kernel reports the socket readable and hung up (EPOLLIN, EPOLLRDHUP,
// EPOLLHUP, also for a peer that never closes its side), and the poller
// reads what is left, then closes the connection on its own goroutine,
// running the usual OnClose chain (with io.EOF as the error).
//
// pollerConn routes the closes that nbio and the hub make: it is the
// connection the hub writes to and closes, and, for plain TCP, the
// websocket.Conn's net.Conn (nbio closes that after a client's close
// frame and after a protocol error, from the executor). TLS connections
// keep nbio's *nbhttp.Conn there, since nbio's TLS read path needs it; for
// them nbio's own close after a close frame still closes from the
// executor.
//
// Not covered, because it is inside nbio: nbio.Conn.Write closes the
// socket itself, on the writing goroutine, when a write fails (ECONNRESET
// or EPIPE from a client that reset, or nbio's write-buffer cap). A client
// that resets right after its close frame, before the server's answer is
// written, can still cost a new connection that way. Plain-TCP writes go
// through nbio.Conn.Write only when nbio has bytes queued or a write came
// out short (directwrite.go); a direct write that fails shuts the socket
// down instead, for the poller to close.

// pollerConn is an upgraded plain-TCP connection whose Close shuts the
// socket down for its poller to close. It is one pointer, so storing it in
// an interface does not allocate.
type pollerConn struct{ *nbio.Conn }

// Close shuts the socket down; the poller closes it.
func (c pollerConn) Close() error {
	shutdownSocket(c.Conn)
	return nil
}

// pollerTLSConn is pollerConn for a TLS connection: writes go through
// TLS, Close shuts the socket under it down (without a close_notify
// alert: the WebSocket close frame has ended the session already).
type pollerTLSConn struct{ *tls.Conn }

// Close shuts the socket down; the poller closes it.
func (c pollerTLSConn) Close() error {
	if nbc, ok := c.Conn.Conn().(*nbio.Conn); ok {
		shutdownSocket(nbc)
		return nil
	}
	return c.Conn.Close()
}

// pollerClosed returns the connection the hub is given for ws, whose
// underlying connection (net.Conn from nbio, *nbhttp.Conn unwrapped) is
// conn, and for plain TCP makes ws itself close through it. It runs in
// OnOpen, on ws's executor, which also runs every other use nbio and the
// gateway make of ws.Conn for plain TCP (handlers, writes, nbio's close),
// so replacing the field races with nothing.
func pollerClosed(ws *websocket.Conn, conn net.Conn) net.Conn {
	switch c := conn.(type) {
	case *nbio.Conn:
		// ws.Conn is nbhttp's *nbhttp.Conn (or c itself). Only the field in
		// ws is replaced: the *nbhttp.Conn is shared (the listener may still
		// clear its deadline from the accept goroutine), and nbio needs it
		// in ws.Conn only for TLS.
		pc := pollerConn{c}
		ws.Conn = pc
		return pc
	case *tls.Conn:
		return pollerTLSConn{c}
	}
	return conn
}

// nbioConn returns the nbio connection under c (a websocket.Conn's
// net.Conn), or nil for TLS.
func nbioConn(c net.Conn) *nbio.Conn {
	if hc, ok := c.(*nbhttp.Conn); ok {
		c = hc.Conn
	}
	switch c := c.(type) {
	case *nbio.Conn:
		return c
	case pollerConn:
		return c.Conn
	}
	return nil
}

// shutdownSocket shuts c's socket down in both directions, unless c is
// closed already, so that its poller closes it (see above).
func shutdownSocket(c *nbio.Conn) {
	withFD(c, func(fd int) { _ = unix.Shutdown(fd, unix.SHUT_RDWR) })
}

// withFD runs f on c's socket unless c is closed. It holds c's lock, under
// which nbio marks a connection closed before it closes the descriptor
// (nbio's own writes rely on the same), so that the descriptor cannot be
// closed and reused by another connection meanwhile.
func withFD(c *nbio.Conn, f func(fd int)) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	c.Lock()
	defer c.Unlock()
	if closed, _ := c.IsClosed(); closed {
		return
	}
	_ = rc.Control(func(fd uintptr) { f(int(fd)) })
}
