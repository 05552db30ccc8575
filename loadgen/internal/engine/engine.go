// Package engine is wsload's WebSocket client. A connection without a
// chosen source address is dialled on a raw non-blocking socket handed to
// nbio (rawdial.go) and upgraded on its poller (dialasync.go); one bound to a chosen
// 127.0.0.x source is dialled with the standard library, upgraded on the
// blocking socket and then handed to an nbio poller (dialSync). There is
// no goroutine per connection; frames are parsed inline on the poller
// goroutine by a small client-side parser.
//
// Concurrency contract:
//   - DialAsync (no source) fills the Conn, publishes it (an atomic add on
//     Engine.published), starts the connect and returns; the poller writes
//     the request, parses the response and the frames that came with it
//     and reports through Config.OnDial on its own goroutine (or nbio's
//     executor, or the sweeper goroutine for a timeout: dialasync.go has
//     the states). Dial runs on the caller's goroutine and returns when
//     the connection is up or failed; without a source it is DialAsync
//     and a wait. With a source it does the
//     upgrade itself, feeds those frames to the Handler, publishes the
//     Conn and only then registers the socket. Every callback loads
//     Engine.published first, which gives the race detector (and the
//     memory model) the happens-before edge that the epoll registration
//     gives the hardware.
//   - After registration a Conn's read side (Conn.rest, Conn.frag) is owned
//     by the poller goroutine that serves its file descriptor; OnMessage is
//     called there. Shard is fd % Pollers, which is exactly that poller's
//     index, so per-shard accumulators in the scenario are uncontended.
//   - Engine.polls[i] (read buffer, read and pause times) belongs to poller
//     goroutine i; the read loop is ours (read.go), not nbio's.
//   - OnClose runs once per registered Conn on nbio's executor, after the
//     poller has stopped delivering data for it.
//   - Writes (WriteText, Close) may be called from any goroutine; nbio.Conn
//     serialises them with its own mutex.
//   - A registered socket is closed on its poller goroutine only (Close
//     waits for the server to hang up, Abort shuts the socket down for the
//     poller to close): nbio v1.6.8 would otherwise apply a stale epoll
//     event of the closed socket to the next connection that gets its
//     descriptor (conn.go, Close). Conn.flags is atomic.
//   - Stop closes every connection and returns after all OnClose callbacks
//     ran and the pollers exited; no goroutine of the engine outlives Stop.
package engine

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
)

// Handler receives a connection's messages and its end.
type Handler interface {
	// OnMessage gets one complete text or binary message. payload is valid
	// only during the call. now is the Unix-ns time the bytes were read.
	OnMessage(c *Conn, payload []byte, now int64)
	// OnClose is called once when a registered connection ends; err says
	// why (a *CloseError when the server sent a close frame).
	OnClose(c *Conn, err error)
}

// Config configures an Engine.
type Config struct {
	Pollers     int           // nbio poller goroutines; 0 = 1
	DialTimeout time.Duration // TCP connect + upgrade; 0 = 10 s
	Path        string        // request path, default "/ws"
	Handler     Handler
	// MaxMessage bounds an assembled message or partial frame; 0 = 1 MiB.
	MaxMessage int
	// PollerThread, if set, is called on the poller goroutine (locked to
	// its OS thread) with the poller's index before each batch of data.
	PollerThread func(poller int)
	// SSE reads the server's Server-Sent Events stream (GET, default path
	// "/sse") instead of upgrading to WebSocket (sse.go).
	SSE bool
	// OnDial receives the outcome of each DialAsync (dialasync.go): the
	// connection (nil on error), the slot and tag DialAsync was given,
	// the time from the start of the connect to the parsed response, and
	// the error. It runs on a poller, nbio's executor, the engine's
	// sweeper or DialAsync's caller, and must not block. Needed only for
	// DialAsync.
	OnDial func(c *Conn, slot, tag uint32, took time.Duration, err error)
	// ReadBatch: a poller that wakes from an idle wait pauses this long
	// (at most once per ReadBatch) before reading, so that what arrives
	// meanwhile is read in one batch (read.go); 0 = read at once.
	ReadBatch time.Duration
	// StdDial dials every connection with the standard library's
	// net.Dialer (blocking, on the caller), as wsload did before its raw
	// dial: to compare the two, and the path taken anyway where the raw
	// dial cannot be (IPv6, an unknown nbio layout) and a source address
	// is set.
	StdDial bool
}

// Engine owns the nbio pollers of one wsload process.
type Engine struct {
	cfg       Config
	nb        *nbio.Engine
	polls     []pollerState // per poller goroutine, index = Conn.Shard
	published atomic.Uint64 // release/acquire edge between Dial and pollers
	live      atomic.Int64  // registered, not yet closed
	lastUp    atomic.Int64  // Unix ns of the latest successful Dial

	dialMu             sync.Mutex // guards the list of dials in progress (dialasync.go)
	dialHead, dialTail *dialState
	stopSweep          chan struct{}
	sweepDone          chan struct{}
}

// New starts the pollers.
func New(cfg Config) (*Engine, error) {
	if cfg.Handler == nil {
		return nil, errors.New("engine: nil handler")
	}
	if cfg.Pollers <= 0 {
		cfg.Pollers = 1
	}
	if cfg.Pollers > 255 {
		cfg.Pollers = 255
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Path == "" {
		cfg.Path = "/ws"
		if cfg.SSE {
			cfg.Path = "/sse"
		}
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = 1 << 20
	}
	logging.SetLevel(logging.LevelNone)
	e := &Engine{cfg: cfg, polls: make([]pollerState, cfg.Pollers)}
	for i := range e.polls {
		e.polls[i].buf = make([]byte, readBufSize)
	}
	e.nb = nbio.NewEngine(nbio.Config{
		Name:           "wsload",
		NPoller:        cfg.Pollers,
		ReadBufferSize: 4 << 10, // unused: onRead reads into e.polls' buffers
		LockPoller:     true,    // one OS thread per poller: selfmon reads its CPU
	})
	e.nb.OnOpen(func(*nbio.Conn) {})
	e.nb.OnData(e.onData) // not called while OnRead is set
	e.nb.OnRead(e.onRead)
	e.nb.OnClose(e.onClose)
	if err := e.nb.Start(); err != nil {
		return nil, fmt.Errorf("engine: start pollers: %w", err)
	}
	e.stopSweep, e.sweepDone = make(chan struct{}), make(chan struct{})
	go func() { defer close(e.sweepDone); e.sweeper(e.stopSweep) }()
	return e, nil
}

// Pollers is the number of poller goroutines (and shards).
func (e *Engine) Pollers() int { return e.cfg.Pollers }

// LastUpgrade is when the latest successful Dial returned (0: none yet).
func (e *Engine) LastUpgrade() time.Time {
	if ns := e.lastUp.Load(); ns > 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Live is the number of registered connections not yet closed.
func (e *Engine) Live() int64 { return e.live.Load() }

// Stop closes all connections and stops the pollers and the sweeper.
// Dials still connecting then are not reported.
func (e *Engine) Stop() {
	e.nb.Stop()
	close(e.stopSweep)
	<-e.sweepDone
}

func (e *Engine) onData(nc *nbio.Conn, data []byte) {
	e.published.Load()
	c, _ := nc.Session().(*Conn)
	if c == nil {
		return
	}
	if e.cfg.PollerThread != nil {
		e.cfg.PollerThread(int(c.Shard))
	}
	e.deliver(c, nc, data, time.Now().UnixNano())
}

func (e *Engine) onClose(nc *nbio.Conn, err error) {
	e.published.Load()
	c, _ := nc.Session().(*Conn)
	if c == nil {
		return
	}
	if d := c.hs.Load(); d != nil && d.state.Load() != dialUp {
		// ended during the upgrade: the error is the dial's (reset, EOF,
		// nbio's dial timeout)
		switch {
		case err == nil:
			err = io.EOF
		case errors.Is(err, nbio.ErrDialTimeout):
			err = errDialTimeout
		}
		e.finish(d, dialResult{err: err})
		return
	}
	e.live.Add(-1)
	if b := c.closeErr.Load(); b != nil {
		err = b.err
	}
	e.cfg.Handler.OnClose(c, err)
}

// Target is where one connection goes and where it comes from.
type Target struct {
	Addr   string // host:port of the server
	Host   string // Host header; Addr when empty
	Source net.IP // local source address; nil = kernel's choice
	Path   string // request path with query; Config.Path when empty
}

// ErrBadHandshake: the server answered the upgrade with something other
// than a valid 101. A refusal with 503 or 429 is a *RejectedError, which
// also matches ErrBadHandshake under errors.Is.
var ErrBadHandshake = errors.New("engine: bad handshake")

// Dial connects, upgrades and registers one connection. slot is stored in
// Conn.Slot for the Handler. On success it returns the time from the start
// of the TCP connect to the parsed 101 response. Frames that arrived with
// the response are delivered to OnMessage before Dial returns.
func (e *Engine) Dial(t Target, slot uint32) (*Conn, time.Duration, error) {
	if e.CanDialAsync(t) {
		return e.dialAsync(t, slot) // dialasync.go
	}
	return e.dialSync(t, slot)
}

// dialSync dials with the standard library (a source address where the
// raw dial cannot be taken: nbio's own dial cannot bind one), does the upgrade on the blocking socket and
// hands it to the poller (a dup of it).
func (e *Engine) dialSync(t Target, slot uint32) (*Conn, time.Duration, error) {
	// KeepAlive -1: no kernel keepalive probes. Go's default (15 s) costs
	// two packets per connection per 15 s, which at a million connections
	// on one host drowns the loopback in probes; the server's pings are
	// the liveness check.
	d := net.Dialer{Timeout: e.cfg.DialTimeout, KeepAlive: -1, Control: bindNoPort}
	if t.Source != nil {
		d.LocalAddr = &net.TCPAddr{IP: t.Source}
	}
	start := time.Now()
	nc, err := d.Dial("tcp4", t.Addr)
	if err != nil {
		return nil, 0, err
	}
	_ = nc.SetDeadline(start.Add(e.cfg.DialTimeout))
	host := t.Host
	if host == "" {
		host = t.Addr
	}
	path := t.Path
	if path == "" {
		path = e.cfg.Path
	}
	var rest []byte
	if e.cfg.SSE {
		rest, err = handshakeSSE(nc, host, path)
	} else {
		rest, err = handshake(nc, host, path)
	}
	if err != nil {
		_ = nc.Close()
		return nil, 0, err
	}
	elapsed := time.Since(start)
	// The deadline stays: NBConn closes nc, which stops its timers.
	nb, err := nbio.NBConn(nc) // dups the fd and closes nc
	if err != nil {
		_ = nc.Close()
		return nil, 0, fmt.Errorf("engine: hand socket to poller: %w", err)
	}
	c := &Conn{nb: nb, Slot: slot, Shard: uint8(nb.Hash() % e.cfg.Pollers), early: true, sse: e.cfg.SSE}
	nb.SetSession(c)
	var feedErr error
	if len(rest) > 0 {
		feedErr = c.feed(rest, time.Now().UnixNano(), e.cfg.Handler, e.cfg.MaxMessage)
		if feedErr != nil {
			c.closeErr.CompareAndSwap(nil, &errBox{feedErr})
		}
	}
	c.early = false
	pending := c.pending
	c.pending = nil
	e.live.Add(1)
	e.published.Add(1)
	if _, err := e.nb.AddConn(nb); err != nil {
		// addConn closed the socket; nbio calls onClose only for conns
		// that reached the poller, so undo the count here.
		e.live.Add(-1)
		nb.SetSession(nil)
		return nil, 0, fmt.Errorf("engine: register with poller: %w", err)
	}
	if len(pending) > 0 {
		_, _ = nb.Write(pending)
	}
	var ce *CloseError
	if feedErr != nil && !errors.As(feedErr, &ce) {
		// established, then ended by a bad frame that came with the 101:
		// OnClose reports it like any other disconnect. The poller closes
		// the socket (see Conn.Close for why); after a close frame,
		// answered already, the server closes it first.
		c.Abort()
	}
	e.upgraded()
	return c, elapsed, nil
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT so that a bound source address
// gets its port at connect time, per destination, instead of at bind time
// from one shared pool (which would cap a source at ~28k sockets in total).
func bindNoPort(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	_ = serr // not fatal: older kernels lack the option
	return nil
}

const ipBindAddressNoPort = 24 // IP_BIND_ADDRESS_NO_PORT, linux/in.h

var bufPool = sync.Pool{New: func() any { b := make([]byte, maxResponseHead); return &b }}

var acceptGUID = []byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11")

// handshake sends the upgrade request and reads the response headers. It
// returns the bytes that followed the headers (the first frames).
func handshake(nc net.Conn, host, path string) ([]byte, error) {
	var key [24]byte
	newKey(&key)
	var req [512]byte
	if _, err := nc.Write(appendUpgradeRequest(req[:0], host, path, key[:])); err != nil {
		return nil, err
	}
	return readResponseHead(nc, func(head []byte) error { return checkResponse(head, key[:]) })
}

// readResponseHead reads a response head from nc and has check judge it;
// it returns the bytes that came after the head.
func readResponseHead(nc net.Conn, check func(head []byte) error) ([]byte, error) {
	pb := bufPool.Get().(*[]byte)
	defer bufPool.Put(pb)
	buf := *pb
	n := 0
	for {
		m, err := nc.Read(buf[n:])
		n += m
		if end := headerEnd(buf[:n]); end >= 0 {
			if err := check(buf[:end]); err != nil {
				return nil, err
			}
			if end == n {
				return nil, nil
			}
			return append([]byte(nil), buf[end:n]...), nil
		}
		if err != nil {
			return nil, err
		}
		if n == len(buf) {
			return nil, fmt.Errorf("%w: response headers over %d bytes", ErrBadHandshake, len(buf))
		}
	}
}

func headerEnd(b []byte) int {
	for i := 3; i < len(b); i++ {
		if b[i] == '\n' && b[i-1] == '\r' && b[i-2] == '\n' && b[i-3] == '\r' {
			return i + 1
		}
	}
	return -1
}

// checkResponse wants "HTTP/1.1 101" and the right Sec-WebSocket-Accept.
func checkResponse(h []byte, key []byte) error {
	line, rest := cutLine(h)
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " {
		return fmt.Errorf("%w: status line %q", ErrBadHandshake, clip(line))
	}
	if code := string(line[9:12]); code != "101" {
		if code == "503" || code == "429" {
			return rejected(code, rest)
		}
		return fmt.Errorf("%w: status %s", ErrBadHandshake, clip(line[9:]))
	}
	var in [64]byte
	sum := sha1.Sum(append(append(in[:0], key...), acceptGUID...))
	var want [28]byte
	base64.StdEncoding.Encode(want[:], sum[:])
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		name, val, ok := cutColon(line)
		if ok && equalFold(name, "sec-websocket-accept") {
			if string(val) != string(want[:]) {
				return fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrBadHandshake)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: no Sec-WebSocket-Accept", ErrBadHandshake)
}

func cutLine(b []byte) (line, rest []byte) {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' {
			return b[:i], b[i+2:]
		}
	}
	return b, nil
}

func cutColon(line []byte) (name, val []byte, ok bool) {
	for i, c := range line {
		if c == ':' {
			v := line[i+1:]
			for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
				v = v[1:]
			}
			for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
				v = v[:len(v)-1]
			}
			return line[:i], v, true
		}
	}
	return nil, nil, false
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func clip(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}
