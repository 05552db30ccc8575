package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"

	"github.com/lesismal/nbio"

	"wspush/server/wire"
)

// Conn is one client connection. It is kept small: a pointer to nbio's
// connection, two nil-most-of-the-time buffers and two small integers.
// Scenario state lives in the scenario's own slice, indexed by Slot.
type Conn struct {
	nb       *nbio.Conn
	rest     []byte // an incomplete frame carried to the next read
	frag     []byte // a fragmented message being assembled
	pending  []byte // frames written before the socket reached the poller
	closeErr atomic.Pointer[errBox]
	hs       atomic.Pointer[dialState] // the upgrade in progress (dialasync.go); nil after it
	flags    atomic.Uint32             // flagClosing, flagAnswered
	Slot     uint32                    // the scenario's index for this connection
	Shard    uint8                     // poller index; per-shard accumulators are uncontended
	fragging bool
	early    bool // not registered yet: writes go to pending
	sse      bool // an SSE stream (sse.go): events, not frames
}

type errBox struct{ err error }

// Conn.flags.
const (
	flagClosing  uint32 = 1 << iota // Close sent our close frame: the server's needs no answer
	flagAnswered                    // the server answered Close: waiting for it to hang up
)

// CloseError is a close frame from the server.
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("engine: server closed with %d %q", e.Code, e.Reason)
}

// ErrProtocol is a frame the client cannot accept.
var ErrProtocol = errors.New("engine: protocol error")

// feed parses data (a read from the socket) into frames. It runs on the
// connection's owner goroutine (dialer before registration, then poller).
func (c *Conn) feed(data []byte, now int64, h Handler, maxMsg int) error {
	if c.flags.Load()&flagAnswered != 0 {
		return nil
	}
	if c.sse {
		return c.feedSSE(data, now, h, maxMsg)
	}
	if len(c.rest) > 0 {
		c.rest = append(c.rest, data...)
		data = c.rest
	}
	for len(data) > 0 {
		n, err := c.frame(data, now, h, maxMsg)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		data = data[n:]
	}
	switch {
	case len(data) == 0:
		c.rest = nil
	case len(data) > maxMsg+14:
		return fmt.Errorf("%w: frame over %d bytes", ErrProtocol, maxMsg)
	case len(c.rest) > 0 && &data[0] == &c.rest[len(c.rest)-len(data)]:
		c.rest = append(c.rest[:0], data...) // overlapping copy is fine
	default:
		c.rest = append([]byte(nil), data...)
	}
	return nil
}

// frame handles the frame at the start of b and returns its length, or 0
// when b holds only part of it.
func (c *Conn) frame(b []byte, now int64, h Handler, maxMsg int) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	fin, op := b[0]&0x80 != 0, b[0]&0x0F
	if b[0]&0x70 != 0 {
		return 0, fmt.Errorf("%w: reserved bits set", ErrProtocol)
	}
	if b[1]&0x80 != 0 {
		return 0, fmt.Errorf("%w: masked server frame", ErrProtocol)
	}
	hdr, size := 2, uint64(b[1]&0x7F)
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, nil
		}
		hdr, size = 4, uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if len(b) < 10 {
			return 0, nil
		}
		hdr, size = 10, binary.BigEndian.Uint64(b[2:])
	}
	if size > uint64(maxMsg) {
		return 0, fmt.Errorf("%w: frame of %d bytes", ErrProtocol, size)
	}
	end := hdr + int(size)
	if len(b) < end {
		return 0, nil
	}
	p := b[hdr:end]
	switch op {
	case wire.OpText, wire.OpBinary:
		if c.fragging {
			return 0, fmt.Errorf("%w: new message inside a fragmented one", ErrProtocol)
		}
		if fin {
			h.OnMessage(c, p, now)
		} else {
			c.fragging = true
			c.frag = append(c.frag[:0], p...)
		}
	case wire.OpCont:
		if !c.fragging {
			return 0, fmt.Errorf("%w: continuation without a start", ErrProtocol)
		}
		if len(c.frag)+len(p) > maxMsg {
			return 0, fmt.Errorf("%w: message over %d bytes", ErrProtocol, maxMsg)
		}
		c.frag = append(c.frag, p...)
		if fin {
			msg := c.frag
			c.frag, c.fragging = nil, false
			h.OnMessage(c, msg, now)
		}
	case wire.OpPing:
		if !fin || size > 125 {
			return 0, fmt.Errorf("%w: bad ping", ErrProtocol)
		}
		_ = c.write(wire.OpPong, p)
	case wire.OpPong:
	case wire.OpClose:
		ce := &CloseError{Code: 1005}
		if len(p) >= 2 {
			ce.Code = binary.BigEndian.Uint16(p)
			ce.Reason = string(p[2:])
		}
		c.closeErr.CompareAndSwap(nil, &errBox{ce})
		if c.flags.Load()&flagClosing != 0 {
			// It answers our Close: the handshake is done, and the server
			// closes the socket next; the poller closes ours when it reads
			// that (see Close). What else arrives is dropped.
			c.flags.Or(flagAnswered)
			c.frag, c.fragging = nil, false
			return len(b), nil
		}
		var reply [2]byte
		binary.BigEndian.PutUint16(reply[:], 1000)
		_ = c.write(wire.OpClose, reply[:])
		return 0, ce
	default:
		return 0, fmt.Errorf("%w: opcode %d", ErrProtocol, op)
	}
	return end, nil
}

// WriteText sends one masked text frame. Safe from any goroutine. On an
// SSE stream it sends nothing (an SSE client has no messages to send).
func (c *Conn) WriteText(payload []byte) error {
	if c.sse {
		return nil
	}
	return c.write(wire.OpText, payload)
}

func (c *Conn) write(op byte, payload []byte) error {
	var stack [256]byte
	n := len(payload)
	buf := stack[:0]
	if n+14 > len(stack) {
		buf = make([]byte, 0, n+14)
	}
	switch {
	case n < 126:
		buf = append(buf, 0x80|op, 0x80|byte(n))
	case n <= 0xFFFF:
		buf = append(buf, 0x80|op, 0x80|126, byte(n>>8), byte(n))
	default:
		buf = append(buf, 0x80|op, 0x80|127)
		buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	}
	// Masking keys only need to be unpredictable to intermediaries that a
	// loopback load test does not have; math/rand is enough here.
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	buf = append(buf, key[:]...)
	off := len(buf)
	buf = append(buf, payload...)
	for i := range payload {
		buf[off+i] ^= key[i&3]
	}
	if c.early {
		c.pending = append(c.pending, buf...)
		return nil
	}
	_, err := c.nb.Write(buf)
	return err
}

// Close starts the closing handshake: it sends a normal close frame and
// leaves the socket open for the server's answer. As RFC 6455 §7.1.1 asks
// of a client, it waits for the server to close the TCP connection first:
// the poller reads the server's close frame, then the end of the stream,
// closes the socket and OnClose follows with err set to ErrClosedByClient.
// A server that does not close is the caller's to Abort after a while.
//
// The socket is closed on its poller goroutine, never here, for a reason
// beyond courtesy: nbio v1.6.8 acts on the events of one epoll_wait after
// it returned, looking connections up by file descriptor. A socket closed
// from another goroutine in that window frees its descriptor; the next
// Dial gets the same number, and the poller applies the old socket's
// hang-up to the new connection — a healthy connection ends with "eof"
// (under load, a few in every churn run). Closing only on the poller, or
// shutting the socket down (Abort) so that the poller closes it, leaves no
// such window.
func (c *Conn) Close() {
	if c.sse { // no closing handshake on a stream
		c.Abort()
		return
	}
	c.closeErr.CompareAndSwap(nil, &errBox{ErrClosedByClient})
	if c.flags.Or(flagClosing)&flagClosing != 0 {
		return
	}
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], 1000)
	_ = c.write(wire.OpClose, p[:]) // a failed write closed the socket
}

// Abort ends the connection without waiting: it shuts the socket down,
// and the poller, seeing the hang-up, closes it and calls OnClose (with
// ErrClosedByClient). It is meant for a server that did not answer Close.
// Safe from any goroutine, also after the connection ended: it holds
// nbio's lock, under which nbio marks a connection closed before it
// closes the descriptor, so a descriptor already passed on to a new
// socket is never touched.
func (c *Conn) Abort() {
	c.closeErr.CompareAndSwap(nil, &errBox{ErrClosedByClient})
	rc, err := c.nb.SyscallConn()
	if err != nil {
		return
	}
	c.nb.Lock()
	defer c.nb.Unlock()
	if closed, _ := c.nb.IsClosed(); closed {
		return
	}
	_ = rc.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
}

// ErrClosedByClient: wsload closed the connection itself.
var ErrClosedByClient = errors.New("engine: closed by client")
