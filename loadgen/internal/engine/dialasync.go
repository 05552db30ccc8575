package engine

// The fast dial: a connection without a chosen source address (Target.Source
// nil) is dialled on a raw non-blocking socket by nbio (Engine.DialAsync),
// registered with its poller once, and upgraded there: the poller writes the
// upgrade request when the connect completes (onConnected) and parses the
// response in wsload's own read loop (read.go → upgradeRead). The dialing
// goroutine only waits for the outcome. Compared with the standard-library
// dial (Dial's other path) this leaves out Go's net.Dialer, the runtime
// netpoller's registration and deregistration, two deadlines, the dup of the
// socket and two of the three epoll_ctl calls per connection.
//
// A connection being upgraded has a dialState (Conn.hs). Its state decides,
// once, who reports the outcome:
//
//	connecting ──onConnected──▶ connected ──101──▶ up
//	     │                          │
//	     ├──────────────────────────┴──error, hang-up──▶ failed
//	     └──────────────────────────┴──Dial's timer──▶ abandoned
//
// Up and failed are set by the poller (or nbio's executor, in onClose) and
// send the one result on the waiter's channel (capacity 1: never blocks);
// abandoned is set by the waiting Dial when its timer fires first, and then
// nothing is sent: a connection that completes later is shut down by
// whoever sees the abandoned state (onConnected, upgradeRead), or by Dial
// itself when it already knows the socket (connected). A connect that never
// completes is closed by nbio's dial timeout (DialAsyncTimeout, the same
// -timeout), which the connect also clears (and Dial clears again: nbio
// may arm it after the connect already completed).
//
// Ownership: Dial fills the Conn and the dialState before DialAsync and
// publishes them (Engine.published); after that, the dialState's plain
// fields (nc before the connected state, head, took) are written by the
// poller only, and read by Dial after it received the result or won the
// state. The request is built where it is written (onConnected), so that
// the state a connection keeps while connecting stays small. Conn.hs is cleared by the poller once the connection is up.

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lesismal/nbio"
)

// dialState.state values.
const (
	dialConnecting uint32 = iota
	dialConnected         // the connect completed, the request is written
	dialUp                // the 101 (SSE: the 200) is parsed: reported
	dialFailed            // reported as an error
	dialAbandoned         // Dial timed out: nothing is reported
)

// maxResponseHead bounds an upgrade response's head.
const maxResponseHead = 4096

// errDialTimeout: the connect and upgrade took longer than -timeout.
var errDialTimeout = fmt.Errorf("engine: connect and upgrade: %w", os.ErrDeadlineExceeded)

// dialState is one connection's upgrade in progress.
type dialState struct {
	state atomic.Uint32
	done  chan<- dialResult // the waiting Dial's, capacity 1
	nc    *nbio.Conn        // set before state connected
	start int64             // Unix ns at the start of the connect
	host  string            // Host header
	path  string            // request path
	head  []byte            // a response head that one read did not hold
	key   [24]byte          // Sec-WebSocket-Key (WebSocket)
}

type dialResult struct {
	took time.Duration
	err  error
}

// finish reports err (nil: up) if nobody reported or abandoned the dial
// yet; from is the state the caller saw.
func (d *dialState) finish(res dialResult) bool {
	to := dialFailed
	if res.err == nil {
		to = dialUp
	}
	for {
		s := d.state.Load()
		if s != dialConnecting && s != dialConnected {
			return false
		}
		if d.state.CompareAndSwap(s, to) {
			d.done <- res
			return true
		}
	}
}

// waiter is what a dialing goroutine waits with: a channel for the result
// and a timer, reused across dials (pooled, so that the scenario's dialer
// goroutines each end up with one of their own).
type waiter struct {
	ch chan dialResult
	t  *time.Timer
}

var reqBufs = sync.Pool{New: func() any { return new([512]byte) }}

var waiters = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{ch: make(chan dialResult, 1), t: t}
}}

// dialAsync is Dial without a source address.
func (e *Engine) dialAsync(t Target, slot uint32) (*Conn, time.Duration, error) {
	c := &Conn{Slot: slot, sse: e.cfg.SSE}
	w := waiters.Get().(*waiter)
	defer waiters.Put(w)
	d := &dialState{done: w.ch, host: t.Host, path: t.Path}
	if d.host == "" {
		d.host = t.Addr
	}
	if d.path == "" {
		d.path = e.cfg.Path
	}
	if !e.cfg.SSE {
		newKey(&d.key)
	}
	w.t.Reset(e.cfg.DialTimeout)
	d.start = time.Now().UnixNano()
	c.hs.Store(d)
	e.published.Add(1)
	err := e.nb.DialAsyncTimeout("tcp4", t.Addr, e.cfg.DialTimeout, func(nc *nbio.Conn, err error) {
		e.onConnected(c, d, nc, err)
	})
	if err != nil {
		w.t.Stop()
		return nil, 0, err
	}
	var res dialResult
	select {
	case res = <-w.ch:
		w.t.Stop()
	case <-w.t.C:
		if d.state.CompareAndSwap(dialConnecting, dialAbandoned) {
			return nil, 0, errDialTimeout // nbio's dial timeout closes the socket
		}
		if d.state.CompareAndSwap(dialConnected, dialAbandoned) {
			_ = d.nc.SetWriteDeadline(time.Time{})
			shutdown(d.nc)
			return nil, 0, errDialTimeout
		}
		res = <-w.ch // reported meanwhile
	}
	if d.nc != nil {
		// nbio arms its dial timeout after registering the socket, which
		// may be after the connect completed and cleared it: clear it.
		_ = d.nc.SetWriteDeadline(time.Time{})
	}
	if res.err != nil {
		return nil, 0, res.err
	}
	e.upgraded()
	return c, res.took, nil
}

// onConnected runs when the connect completed (nbio calls it on the
// socket's poller, or for a connect that completed at once on its
// executor). nbio does not look at the socket's error: a failed connect
// shows here too, and writing the request reports the error (ECONNREFUSED
// for a refused one).
func (e *Engine) onConnected(c *Conn, d *dialState, nc *nbio.Conn, err error) {
	e.published.Load()
	if err != nil {
		d.finish(dialResult{err: err})
		return
	}
	c.nb = nc
	c.Shard = uint8(nc.Hash() % e.cfg.Pollers)
	nc.SetSession(c)
	d.nc = nc
	if !d.state.CompareAndSwap(dialConnecting, dialConnected) {
		shutdown(nc) // abandoned: the poller closes it
		return
	}
	e.published.Add(1) // the executor's writes, for the poller
	_ = nc.SetNoDelay(true)
	buf := reqBufs.Get().(*[512]byte) // the write makes a local buffer escape
	var req []byte
	if c.sse {
		req = appendSSERequest(buf[:0], d.host, d.path)
	} else {
		req = appendUpgradeRequest(buf[:0], d.host, d.path, d.key[:])
	}
	_, err = nc.Write(req) // copies what it cannot write now
	reqBufs.Put(buf)
	if err != nil {
		d.finish(dialResult{err: err}) // the failed write closed the socket
	}
}

// upgradeRead parses a read of a connection being upgraded, on its poller.
func (e *Engine) upgradeRead(c *Conn, d *dialState, nc *nbio.Conn, data []byte, now int64) {
	head := data
	if len(d.head) > 0 {
		d.head = append(d.head, data...)
		head = d.head
	}
	end := headerEnd(head)
	if end < 0 {
		if len(head) >= maxResponseHead {
			d.finish(dialResult{err: fmt.Errorf("%w: response headers over %d bytes", ErrBadHandshake, maxResponseHead)})
			_ = nc.Close()
			return
		}
		if len(d.head) == 0 {
			d.head = append(make([]byte, 0, 2*len(data)), data...)
		}
		return
	}
	var err error
	if c.sse {
		err = checkSSEResponse(head[:end])
	} else {
		err = checkResponse(head[:end], d.key[:])
	}
	if err != nil {
		d.finish(dialResult{err: err})
		_ = nc.Close()
		return
	}
	if s := d.state.Load(); s != dialConnected || !d.state.CompareAndSwap(dialConnected, dialUp) {
		_ = nc.Close() // abandoned (or failed meanwhile)
		return
	}
	c.hs.Store(nil)
	e.live.Add(1)
	if rest := head[end:]; len(rest) > 0 {
		// frames that came with the 101, before Dial returns
		e.deliver(c, nc, rest, now)
	}
	d.head = nil
	d.done <- dialResult{took: time.Duration(now - d.start)}
}

// upgraded records the time of the latest successful Dial.
func (e *Engine) upgraded() {
	now := time.Now().UnixNano()
	for last := e.lastUp.Load(); now > last; last = e.lastUp.Load() {
		if e.lastUp.CompareAndSwap(last, now) {
			break
		}
	}
}

// shutdown shuts nc's socket down so that its poller, seeing the hang-up,
// closes it; safe from any goroutine (see Conn.Abort).
func shutdown(nc *nbio.Conn) {
	nc.Lock()
	defer nc.Unlock()
	if closed, _ := nc.IsClosed(); closed {
		return
	}
	_ = syscall.Shutdown(nc.Hash(), syscall.SHUT_RDWR)
}

// newKey fills key with a fresh Sec-WebSocket-Key: 16 random bytes in
// base64. The key is a nonce that proves the server understood the
// upgrade (RFC 6455 §4.1), not a secret: math/rand/v2's per-thread
// ChaCha8 stream is enough and costs no system call.
func newKey(key *[24]byte) {
	var raw [16]byte
	binary.LittleEndian.PutUint64(raw[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(raw[8:], rand.Uint64())
	base64.StdEncoding.Encode(key[:], raw[:])
}

// appendUpgradeRequest appends a WebSocket upgrade request.
func appendUpgradeRequest(b []byte, host, path string, key []byte) []byte {
	b = append(b, "GET "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	b = append(b, key...)
	return append(b, "\r\n\r\n"...)
}

// appendSSERequest appends the GET of an SSE stream.
func appendSSERequest(b []byte, host, path string) []byte {
	b = append(b, "GET "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	return append(b, "\r\nAccept: text/event-stream\r\n\r\n"...)
}
