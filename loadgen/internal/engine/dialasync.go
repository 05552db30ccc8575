package engine

// The fast dial: a connection to an IPv4 address (with or without a source
// address, Target.Source) is dialled on a raw non-blocking socket that wsload makes itself and
// hands to nbio as an *nbio.Conn (rawdial.go; nbio's DialAsyncTimeout when
// nbio's Conn layout is unknown), registered with its poller once, and
// upgraded there: the request is written at once (with nbio's dial: when
// the connect completes, onConnected) and the response parsed in wsload's
// own read loop (read.go → upgradeRead). Compared with the standard-library
// dial (Dial's other path) this leaves out Go's net.Dialer, the runtime
// netpoller's registration and deregistration, two deadlines, the dup of the
// socket and two of the three epoll_ctl calls per connection.
//
// The dial is callback-based: DialAsync returns once the connect is under
// way, and its outcome is reported once, through Config.OnDial, on the
// goroutine that learns it: the poller (the 101, a bad response), nbio's
// executor (a hang-up during the upgrade), the engine's sweeper (a
// timeout) or the caller itself (a socket that could not be made). No
// goroutine is woken per connection. Dial is DialAsync plus a wait on a
// channel, for callers that want to block. nbio's own dial cannot bind a
// source address: with a source and no raw dial, both take the
// standard-library dial.
//
// A connection being upgraded has a dialState (Conn.hs). Its state decides,
// once, who reports the outcome:
//
//	connecting ──onConnected──▶ connected ──101──▶ up   (raw dial: connected at once)
//	     │                          │
//	     ├──────────────────────────┴──error, hang-up──▶ failed
//	     └──────────────────────────┴──sweeper: -timeout──▶ abandoned
//
// Up and failed are set by the poller (or nbio's executor, in onClose),
// abandoned by the sweeper; the one that moves the state reports. A
// connection that completes after it was abandoned is shut down by whoever
// sees the abandoned state (onConnected, upgradeRead), or by the sweeper
// when it already knows the socket (connected; on the raw dial always,
// its shutdown also ends a connect still in progress). With nbio's dial,
// a connect that never completes is closed by nbio's dial timeout
// (DialAsyncTimeout, the same -timeout). The connect clears that timer, but nbio arms it only after
// it registered the socket, which may be after the connect completed: the
// caller (after DialAsyncTimeout returned: dialState.armed) and the poller
// (after the connected state) each check the other's flag, and at least
// one of them clears it (clearDialTimer).
//
// Timeouts: the dials in progress are kept in a list in start order
// (Engine.dialMu guards it and dialState.prev, next, listed); the sweeper
// goroutine looks at its head every DialTimeout/10 (at most 100 ms) and
// abandons what is older than DialTimeout. That is two short critical
// sections per dial instead of a Go timer per dial (the raw dial has no
// timer at all).
//
// Ownership: DialAsync fills the Conn and the dialState before the
// connect and publishes them (Engine.published); after that, the
// dialState's plain fields (nc before the connected state, head) are
// written by the poller only, and read by others after they won the
// state or saw it. The request is built where it is written (onConnected),
// so that the state a connection keeps while connecting stays small.
// Conn.hs is cleared by the poller once the connection is up.

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
	dialAbandoned         // the sweeper reported a timeout
)

// maxResponseHead bounds an upgrade response's head.
const maxResponseHead = 4096

// errDialTimeout: the connect and upgrade took longer than -timeout.
var errDialTimeout = fmt.Errorf("engine: connect and upgrade: %w", os.ErrDeadlineExceeded)

// dialState is one connection's upgrade in progress.
type dialState struct {
	state      atomic.Uint32
	armed      atomic.Bool     // DialAsyncTimeout returned: nbio's dial timer is set
	c          *Conn           // the connection being made
	wait       chan dialResult // Dial's (capacity 1); nil: report to Config.OnDial
	nc         *nbio.Conn      // set before state connected
	prev, next *dialState      // Engine.dialMu: the list of dials in progress
	start      int64           // Unix ns at the start of the connect
	host       string          // Host header
	path       string          // request path
	head       []byte          // a response head that one read did not hold
	tag        uint32          // the caller's, passed back to OnDial
	listed     bool            // Engine.dialMu: in the list
	key        [24]byte        // Sec-WebSocket-Key (WebSocket)
}

type dialResult struct {
	took time.Duration
	err  error
}

// finish reports res (err nil: up) if nobody reported or abandoned the
// dial yet.
func (e *Engine) finish(d *dialState, res dialResult) bool {
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
			e.report(d, res)
			return true
		}
	}
}

// report hands the outcome to Dial's channel or to Config.OnDial; the
// caller moved the state.
func (e *Engine) report(d *dialState, res dialResult) {
	e.unlist(d)
	if d.wait != nil {
		d.wait <- res // capacity 1, one result: never blocks
		return
	}
	if res.err != nil {
		e.cfg.OnDial(nil, d.c.Slot, d.tag, 0, res.err)
		return
	}
	e.upgraded()
	e.cfg.OnDial(d.c, d.c.Slot, d.tag, res.took, nil)
}

var reqBufs = sync.Pool{New: func() any { return new([512]byte) }}

var waits = sync.Pool{New: func() any { return make(chan dialResult, 1) }}

// DialAsync starts connecting one connection to t (without a source
// address) and returns; the outcome is reported once through
// Config.OnDial, with tag, on the goroutine that learns it (see above) —
// possibly before DialAsync returns, on the caller (a socket that could
// not be made). OnDial must not block. When t cannot take that path
// (CanDialAsync), the dial is the standard library's: it runs on the
// caller, which OnDial then runs on too.
func (e *Engine) DialAsync(t Target, slot, tag uint32) {
	if !e.CanDialAsync(t) {
		c, took, err := e.dialSync(t, slot)
		e.cfg.OnDial(c, slot, tag, took, err)
		return
	}
	e.startDial(t, slot, tag, nil)
}

// dialAsync is Dial on the fast path: DialAsync and a wait.
func (e *Engine) dialAsync(t Target, slot uint32) (*Conn, time.Duration, error) {
	ch := waits.Get().(chan dialResult)
	d := e.startDial(t, slot, 0, ch)
	res := <-ch
	waits.Put(ch)
	if res.err != nil {
		return nil, 0, res.err
	}
	e.upgraded()
	return d.c, res.took, nil
}

func (e *Engine) startDial(t Target, slot, tag uint32, wait chan dialResult) *dialState {
	c := &Conn{Slot: slot, sse: e.cfg.SSE}
	d := &dialState{c: c, wait: wait, host: t.Host, path: t.Path, tag: tag}
	if d.host == "" {
		d.host = t.Addr
	}
	if d.path == "" {
		d.path = e.cfg.Path
	}
	if !e.cfg.SSE {
		newKey(&d.key)
	}
	c.hs.Store(d)
	e.list(d)
	e.published.Add(1)
	if e.startRaw(d, t) { // rawdial.go
		return d
	}
	err := e.nb.DialAsyncTimeout("tcp4", t.Addr, e.cfg.DialTimeout, func(nc *nbio.Conn, err error) {
		e.onConnected(d, nc, err)
	})
	if err != nil {
		e.finish(d, dialResult{err: err})
		return d
	}
	d.armed.Store(true)
	if s := d.state.Load(); s == dialConnected || s == dialUp {
		clearDialTimer(d.nc)
	}
	return d
}

// clearDialTimer stops nbio's dial timeout of a connected socket.
func clearDialTimer(nc *nbio.Conn) { _ = nc.SetWriteDeadline(time.Time{}) }

// list adds d, starting now, at the tail of the dials in progress.
func (e *Engine) list(d *dialState) {
	e.dialMu.Lock()
	d.start = time.Now().UnixNano()
	d.listed = true
	d.prev = e.dialTail
	if e.dialTail != nil {
		e.dialTail.next = d
	} else {
		e.dialHead = d
	}
	e.dialTail = d
	e.dialMu.Unlock()
}

// unlist removes d from the dials in progress, if it is there.
func (e *Engine) unlist(d *dialState) {
	e.dialMu.Lock()
	e.unlistLocked(d)
	e.dialMu.Unlock()
}

func (e *Engine) unlistLocked(d *dialState) {
	if !d.listed {
		return
	}
	d.listed = false
	if d.prev != nil {
		d.prev.next = d.next
	} else {
		e.dialHead = d.next
	}
	if d.next != nil {
		d.next.prev = d.prev
	} else {
		e.dialTail = d.prev
	}
	d.prev, d.next = nil, nil
}

// sweeper abandons the dials older than DialTimeout until stop closes.
func (e *Engine) sweeper(stop <-chan struct{}) {
	every := min(max(e.cfg.DialTimeout/10, time.Millisecond), 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var due []*dialState
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		limit := time.Now().UnixNano() - int64(e.cfg.DialTimeout)
		e.dialMu.Lock()
		for d := e.dialHead; d != nil && d.start <= limit; d = e.dialHead {
			e.unlistLocked(d)
			due = append(due, d)
		}
		e.dialMu.Unlock()
		for i, d := range due {
			due[i] = nil
			e.expire(d)
		}
		due = due[:0]
	}
}

// expire abandons d, if it is still in progress, and reports the timeout.
func (e *Engine) expire(d *dialState) {
	if d.state.CompareAndSwap(dialConnecting, dialAbandoned) {
		e.report(d, dialResult{err: errDialTimeout}) // nbio's dial timeout closes the socket
		return
	}
	if d.state.CompareAndSwap(dialConnected, dialAbandoned) {
		clearDialTimer(d.nc)
		shutdown(d.nc)
		e.report(d, dialResult{err: errDialTimeout})
	}
}

// onConnected runs when the connect completed (nbio calls it on the
// socket's poller, or for a connect that completed at once on its
// executor). nbio does not look at the socket's error: a failed connect
// shows here too, and writing the request reports the error (ECONNREFUSED
// for a refused one).
func (e *Engine) onConnected(d *dialState, nc *nbio.Conn, err error) {
	e.published.Load()
	if err != nil {
		e.finish(d, dialResult{err: err})
		return
	}
	if !d.attach(nc, e.cfg.Pollers) {
		shutdown(nc) // abandoned: the poller closes it
		return
	}
	if d.armed.Load() {
		clearDialTimer(nc) // armed before the connect completed, or after it
	}
	e.published.Add(1) // the executor's writes, for the poller
	_ = nc.SetNoDelay(true)
	if err := e.sendRequest(d, nc); err != nil {
		e.finish(d, dialResult{err: err}) // the failed write closed the socket
	}
}

// attach gives the connected socket nc to the dial's Conn and moves the
// dial to connected; false: the dial was abandoned (timed out) meanwhile,
// and nc is the caller's to close.
func (d *dialState) attach(nc *nbio.Conn, pollers int) bool {
	c := d.c
	c.nb = nc
	c.Shard = uint8(nc.Hash() % pollers)
	nc.SetSession(c)
	d.nc = nc
	return d.state.CompareAndSwap(dialConnecting, dialConnected)
}

// sendRequest writes the upgrade request (SSE: the GET) on nc.
func (e *Engine) sendRequest(d *dialState, nc *nbio.Conn) error {
	buf := reqBufs.Get().(*[512]byte) // the write makes a local buffer escape
	var req []byte
	if d.c.sse {
		req = appendSSERequest(buf[:0], d.host, d.path)
	} else {
		req = appendUpgradeRequest(buf[:0], d.host, d.path, d.key[:])
	}
	_, err := nc.Write(req) // copies what it cannot write now
	reqBufs.Put(buf)
	return err
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
			e.finish(d, dialResult{err: fmt.Errorf("%w: response headers over %d bytes", ErrBadHandshake, maxResponseHead)})
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
		e.finish(d, dialResult{err: err})
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
	e.report(d, dialResult{took: time.Duration(now - d.start)})
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
