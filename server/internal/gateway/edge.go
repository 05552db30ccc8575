package gateway

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
	"golang.org/x/sys/unix"
)

// This file is the edge: what a connection may do between accept and a
// complete WebSocket upgrade.
//
//   - Header cap: the bytes of each request's header (request line
//     included) are counted before nbio's parser sees them; past
//     MaxHeaderBytes the client gets 431 and the connection is closed, so
//     nbio never buffers more than the cap. A request with a body gets 413
//     (nothing on this port takes one).
//   - Handshake deadline: a connection not upgraded HandshakeTimeout after
//     accept is closed (408 if it is inside a request header). One sweep
//     goroutine per gateway enforces it over the set of connections not
//     yet upgraded; there is no timer per connection.
//   - Nothing is parsed as HTTP after a complete request until its handler
//     has run: the bytes that follow are held (at most MaxHeaderBytes) and
//     handed on afterwards — to the WebSocket side (through the frame
//     guard) if the request upgraded, to nbio's parser if not. A request
//     pipelined behind an upgrade is thus a bad frame (1002), never HTTP.
//
// The edge sees every read first (it replaces nbio's engine-wide data
// handler, which calls the connection's own). A connection it no longer
// tracks goes straight to its own handler. TLS connections are tracked
// for the deadline only: their bytes are ciphertext here, and nbio's own
// checks apply to them.
//
// Concurrency: edge.shards[i].mu guards that shard's map. edgeConn.mu
// guards the connection's edge state and serialises the hand-off of its
// bytes: the poller (onData) and the executor (release, after a handler)
// both take it, and both call the connection's data handler only while
// holding it, so bytes reach nbio in order. It is held for one bounded
// parse (at most MaxHeaderBytes held bytes). deadline and done are atomic:
// the sweep and the executor wrapper read them without the lock.

const edgeShards = 64

type edge struct {
	maxHeader int
	timeout   time.Duration
	plain     bool // bytes are plaintext HTTP (not TLS)
	shards    [edgeShards]edgeShard
	stopOnce  sync.Once
	stop      chan struct{}
	expired   []*edgeConn // sweep's scratch; only the sweep goroutine uses it
	// onTimeout and onRefused count handshake timeouts and 431/413 answers.
	onTimeout, onRefused func()
}

type edgeShard struct {
	mu sync.Mutex // guards m
	m  map[*nbio.Conn]*edgeConn
}

// Phases of a tracked connection.
const (
	phaseHeader  = iota // reading a request header
	phaseHandler        // a request is complete; its handler has not finished
	phaseRefused        // answered with an error; input is discarded until close
	phaseDone           // upgraded: the edge is out of the way
)

// drainMax is how much input a refused connection may still send (it is
// discarded) before the socket is closed; lingering a little lets the
// client read the answer instead of a reset.
const drainMax = 64 << 10

// refusedGrace is how long a refused connection may linger.
const refusedGrace = time.Second

type edgeConn struct {
	e        *edge
	c        *nbio.Conn
	deadline atomic.Int64 // unix nanoseconds; the sweep closes c after it
	done     atomic.Bool  // phase is phaseDone

	mu       sync.Mutex // guards the fields below
	phase    uint8
	hooked   bool   // the parser's Execute is wrapped
	complete bool   // set by execute, within a parse: a request completed
	n        int    // bytes of the current request header so far
	match    uint8  // progress through "\r\n\r\n"
	drained  int    // bytes discarded after a refusal
	held     []byte // bytes after a complete request, until its handler ran

	exec func(func()) bool // the parser's own Execute (nbio's), which hook replaced
}

func newEdge(maxHeader int, timeout time.Duration, plain bool) *edge {
	e := &edge{maxHeader: maxHeader, timeout: timeout, plain: plain,
		stop:      make(chan struct{}),
		onTimeout: func() {}, onRefused: func() {}}
	for i := range e.shards {
		e.shards[i].m = make(map[*nbio.Conn]*edgeConn)
	}
	return e
}

func (e *edge) shard(c *nbio.Conn) *edgeShard {
	return &e.shards[uint(c.Hash())%edgeShards]
}

// opened starts tracking c; nbio calls it after accept, before the first
// read.
func (e *edge) opened(c net.Conn) {
	nbc, ok := c.(*nbio.Conn)
	if !ok {
		return
	}
	ec := &edgeConn{e: e, c: nbc}
	ec.deadline.Store(time.Now().Add(e.timeout).UnixNano())
	s := e.shard(nbc)
	s.mu.Lock()
	s.m[nbc] = ec
	s.mu.Unlock()
}

// forget stops tracking c (closed, or upgraded).
func (e *edge) forget(c *nbio.Conn) {
	s := e.shard(c)
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

func (e *edge) lookup(c *nbio.Conn) *edgeConn {
	s := e.shard(c)
	s.mu.Lock()
	ec := s.m[c]
	s.mu.Unlock()
	return ec
}

// upgraded stops tracking c once a TLS connection is a WebSocket (plain
// connections are released by their handler's wrapper).
func (e *edge) upgraded(c *nbio.Conn) {
	if ec := e.lookup(c); ec != nil && !e.plain {
		ec.done.Store(true)
		e.forget(c)
	}
}

// onData is the engine-wide data handler, on the poller goroutine.
func (e *edge) onData(c *nbio.Conn, data []byte) {
	ec := e.lookup(c)
	if ec == nil || !e.plain {
		c.DataHandler()(c, data)
		return
	}
	ec.mu.Lock()
	ec.feed(data)
	ec.mu.Unlock()
}

// feed hands data on according to the phase; ec.mu is held.
func (ec *edgeConn) feed(data []byte) {
	e, c := ec.e, ec.c
	for len(data) > 0 {
		switch ec.phase {
		case phaseDone:
			c.DataHandler()(c, data)
			return
		case phaseRefused:
			ec.drained += len(data)
			if ec.drained > drainMax {
				_ = c.Close()
			}
			return
		case phaseHandler:
			if len(ec.held)+len(data) > e.maxHeader {
				ec.phase = phaseRefused
				_ = c.Close()
				return
			}
			ec.held = append(ec.held, data...)
			return
		}
		if !ec.hooked {
			ec.hook()
		}
		end := ec.scan(data)
		if ec.n > e.maxHeader {
			ec.refuse(431, "Request Header Fields Too Large", "request header over "+strconv.Itoa(e.maxHeader)+" bytes")
			return
		}
		if end < 0 {
			c.DataHandler()(c, data)
			return
		}
		ec.complete = false
		c.DataHandler()(c, data[:end])
		if !ec.complete {
			if closed, _ := c.IsClosed(); closed {
				ec.phase = phaseRefused
				return
			}
			// The header is complete but the request is not: a body follows.
			ec.refuse(413, "Content Too Large", "requests with a body are not accepted here")
			return
		}
		ec.phase, ec.n, ec.match = phaseHandler, 0, 0
		data = data[end:]
	}
}

// scan counts data's bytes into the current request header and returns
// the index just past the header's end ("\r\n\r\n"), or -1. nbio's parser
// requires CRLF line ends, as this does.
func (ec *edgeConn) scan(data []byte) int {
	m := ec.match
	for i, b := range data {
		switch {
		case b == '\r' && (m == 0 || m == 2):
			m++
		case b == '\n' && (m == 1 || m == 3):
			m++
			if m == 4 {
				ec.n += i + 1
				ec.match = 0
				return i + 1
			}
		case b == '\r':
			m = 1
		default:
			m = 0
		}
	}
	ec.n += len(data)
	ec.match = m
	return -1
}

// hook wraps the connection's HTTP parser's executor, so that the edge
// learns when a request completes (execute runs within the parse) and
// when its handler has run (release).
func (ec *edgeConn) hook() {
	ec.hooked = true
	if p, ok := ec.c.Session().(*nbhttp.Parser); ok {
		ec.exec, p.Execute = p.Execute, ec.execute
	}
}

// execute replaces the parser's executor. The upgrader copies it into the
// WebSocket connection, so after the upgrade it is a plain hand-off.
func (ec *edgeConn) execute(f func()) bool {
	if ec.done.Load() {
		return ec.c.Execute(f)
	}
	// Within feed's parse: ec.mu is held by this goroutine.
	ec.complete = true
	return ec.c.Execute(func() {
		f()
		ec.release()
	})
}

// release runs on the executor after a request's handler (and nbio's
// flush of its response): the held bytes go to the WebSocket side if the
// request upgraded, to the parser as the next request if not.
func (ec *edgeConn) release() {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.phase != phaseHandler {
		return
	}
	held := ec.held
	ec.held = nil
	if ws, ok := ec.c.Session().(*websocket.Conn); ok {
		ec.phase = phaseDone
		ec.done.Store(true)
		// The upgrader copied execute into ws; put nbio's back, so that ec
		// is not kept for the connection's life. The poller reads it only
		// after forget (through the shard's mutex) or under ec.mu. It is
		// the parser's func value: a new one (ec.c.Execute) would be an
		// allocation kept for the connection's life.
		ws.Execute = ec.exec
		if ws.Execute == nil {
			ws.Execute = ec.c.Execute
		}
		ec.e.forget(ec.c)
	} else if _, ok := ec.c.Session().(*sseSession); ok { // sse.go: a stream now
		ec.phase = phaseDone
		ec.done.Store(true)
		ec.e.forget(ec.c)
	} else {
		ec.phase = phaseHeader
	}
	ec.feed(held)
}

// refuse answers with status and closes: the write side at once, the
// socket after the client has gone, drainMax more bytes or refusedGrace.
func (ec *edgeConn) refuse(status int, text, body string) {
	ec.phase = phaseRefused
	ec.held = nil
	ec.e.onRefused()
	writeRefusal(ec.c, status, text, body)
	if d := time.Now().Add(refusedGrace).UnixNano(); d < ec.deadline.Load() {
		ec.deadline.Store(d)
	}
}

// writeRefusal writes a minimal HTTP response and shuts the write side.
func writeRefusal(c *nbio.Conn, status int, text, body string) {
	resp := "HTTP/1.1 " + strconv.Itoa(status) + " " + text + "\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)+1) + "\r\n\r\n" + body + "\n"
	_, _ = c.Write([]byte(resp))
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_WR) })
	}
}

// sweepEvery is the sweep period for a handshake timeout d.
func sweepEvery(d time.Duration) time.Duration {
	return min(max(d/4, 10*time.Millisecond), time.Second)
}

// run sweeps until stopClose.
func (e *edge) run() {
	t := time.NewTicker(sweepEvery(e.timeout))
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			e.sweep(now)
		}
	}
}

func (e *edge) stopSweep() { e.stopOnce.Do(func() { close(e.stop) }) }

// sweep closes the tracked connections past their deadline.
func (e *edge) sweep(now time.Time) {
	ns := now.UnixNano()
	exp := e.expired[:0]
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.Lock()
		for _, ec := range s.m {
			if ec.deadline.Load() < ns {
				exp = append(exp, ec)
			}
		}
		s.mu.Unlock()
	}
	for i, ec := range exp {
		ec.expire()
		exp[i] = nil
	}
	e.expired = exp[:0]
}

// expire closes a connection that ran out of time; one inside a request
// header is told so first.
func (ec *edgeConn) expire() {
	ec.mu.Lock()
	if ec.phase == phaseHeader && ec.e.plain {
		ec.e.onTimeout()
		ec.phase = phaseRefused
		writeRefusal(ec.c, 408, "Request Timeout", "the WebSocket handshake took too long")
	} else if ec.phase != phaseRefused {
		ec.e.onTimeout()
	}
	ec.phase = phaseRefused
	ec.mu.Unlock()
	ec.e.forget(ec.c)
	shutdownSocket(ec.c) // its poller closes it (pollerclose.go)
}

// edgeUpgraded tells the edge that c (the upgrade handler's connection)
// is a WebSocket now; it matters for TLS connections only.
func (g *Gateway) edgeUpgraded(c net.Conn) {
	if g.edge.plain {
		return
	}
	if tc, ok := c.(interface{ Conn() net.Conn }); ok {
		if nbc, ok := tc.Conn().(*nbio.Conn); ok {
			g.edge.upgraded(nbc)
		}
	}
}
