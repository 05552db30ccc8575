package hub

import (
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"wspush/server/internal/wheel"
	"wspush/server/wire"
)

// Conn is the socket under a client: one Write call sends one whole frame
// without blocking (buffering what the kernel does not take), and Close
// ends it. The gateway's Close does not close the socket itself: it shuts
// it down, for nbio's poller to close (gateway/pollerclose.go).
type Conn interface {
	Write(b []byte) (int, error)
	Close() error
}

// DirectConn is a Conn that also says how much of a write the socket took
// at once. WriteDirect writes b as Write does (whole and in order, the
// rest buffered) and returns the bytes the socket took during the call;
// those are not reported through Written, the buffered rest is, as the
// socket takes it. The gateway's plain-TCP connections are DirectConns:
// they write with a raw write(2) (gateway/directwrite.go), and the client
// accounts the bytes itself instead of a callback per write.
type DirectConn interface {
	Conn
	WriteDirect(b []byte) (taken int, err error)
}

const (
	stateOpen    uint32 = iota
	stateClosing        // a close frame was sent; nothing more is written
	stateClosed         // the socket closed and the client was unregistered
)

// Client is one connection's state. The fields a shard owns are noted; the
// rest are atomics or set before the client is registered.
type Client struct {
	pos   wheel.Pos // owned by the shard goroutine
	conn  Conn
	h     *Hub
	shard *shard // set by Register
	id    uint64

	seq    uint64 // ticks sent; owned by the shard goroutine
	visits uint32 // owned by the shard goroutine
	// slot is the wheel slot Place chose, phase the client's tick phase
	// among the visits of one push interval (a tick on each visit where
	// visits+phase is a multiple of pushEvery, so that clients placed
	// together tick at different visits too), first the low 32 bits of the
	// absolute number of the visit Place planned as the first (the shard
	// makes the visits it missed when it adds the client late: catchUp).
	// All three are set before Register and only read after.
	slot  uint16
	phase uint16
	// subs is the client's subscriptions, one record each (at most the
	// gateway's MaxSubs, searched by topic name: a pointer each where a map
	// cost ~350 B per client; nil until the first, so that an idle client
	// stays 128 B). Copied on write, only through the bus (topics.go).
	subs atomic.Pointer[[]*sub]
	// latest points to the ones that ride on ticks (latest mode, or
	// presence asked: inbox.go); nil until the first. Owned by the shard
	// goroutine.
	latest *[]*sub

	lastRead atomic.Int64 // Unix ns of the last inbound frame (coarse clock)
	unsent   atomic.Int64 // bytes written but not yet taken by the socket
	state    atomic.Uint32
	first    uint32                 // see slot
	reason   atomic.Pointer[string] // why it is being closed
	badRun   atomic.Uint32          // bad messages in a row
	compress atomic.Bool            // the client negotiated permessage-deflate
	expires  atomic.Int64           // Unix ns after which the client is closed (its token expired); 0 = never
}

// SetCompress records that the client negotiated permessage-deflate:
// published messages then go to it compressed.
func (c *Client) SetCompress() { c.compress.Store(true) }

// SetExpiry makes the wheel close the client with 1008 "token expired" on
// its first visit at or after t (so up to one visit period late). The zero
// time means never. It may be called from any goroutine.
func (c *Client) SetExpiry(t time.Time) {
	exp := int64(0)
	if !t.IsZero() {
		exp = t.UnixNano()
	}
	// Hub.expiring counts the clients with an expiry: each change
	// between 0 and not 0 is counted by the one Swap that made it.
	switch old := c.expires.Swap(exp); {
	case old == 0 && exp != 0:
		c.h.expiring.Add(1)
	case old != 0 && exp == 0:
		c.h.expiring.Add(-1)
	}
}

// WheelPos lets the client live in a wheel.
func (c *Client) WheelPos() *wheel.Pos { return &c.pos }

// ID returns the client's id, unique within the process.
func (c *Client) ID() string { return "c" + strconv.FormatUint(c.id, 36) }

// Touch records that a frame arrived, for the idle timeout.
func (c *Client) Touch() { c.lastRead.Store(c.h.Now()) }

// Written records n bytes taken by the socket; the socket layer calls it
// for every successful write so that the client's unsent bytes are known.
// The count never goes below zero: bytes the client did not count (nbio's
// own frames, TLS record overhead) must not earn later frames credit.
func (c *Client) Written(n int) {
	if v := c.unsent.Add(-int64(n)); v < 0 {
		c.unsent.CompareAndSwap(v, 0)
	}
}

// BadMessage counts a bad message in a row and returns the run's length.
func (c *Client) BadMessage() uint32 { return c.badRun.Add(1) }

// GoodMessage ends a run of bad messages.
func (c *Client) GoodMessage() {
	if c.badRun.Load() != 0 {
		c.badRun.Store(0)
	}
}

// Send writes one frame. It reports false, writing nothing, when the client
// is closing or closed, or when the frame would take its unsent bytes over
// the cap while earlier bytes are still unsent: then the client is dropped
// as a slow consumer. (A frame alone may be as large as the cap allows; the
// server's configuration keeps frames well under it.)
func (c *Client) Send(frame []byte) bool {
	if c.isSSE() {
		return c.sendAsEvent(frame) // sse.go
	}
	return c.write(frame)
}

// write writes b, as Send does a frame, for any transport.
func (c *Client) write(frame []byte) bool {
	if c.state.Load() != stateOpen {
		return false
	}
	n := int64(len(frame))
	if after := c.unsent.Add(n); after > int64(c.h.cfg.MaxUnsent) && after > n {
		c.unsent.Add(-n)
		c.CloseWith(CloseSlow)
		return false
	}
	if err := c.put(frame); err != nil {
		c.unsent.Add(-n)
		if r, ok := writeFailure(err); ok {
			c.setReason(r.label)
		}
		return false
	}
	return true
}

// put writes b, whose length the caller has added to unsent, and takes off
// what a DirectConn reports the socket took at once (a plain Conn reports
// every byte through Written). On an error nothing is taken off: the
// caller gives the whole length back.
func (c *Client) put(b []byte) error {
	if d, ok := c.conn.(DirectConn); ok {
		taken, err := d.WriteDirect(b)
		if err == nil && taken > 0 {
			c.Written(taken)
		}
		return err
	}
	_, err := c.conn.Write(b)
	return err
}

// writeFailure is the close reason a failed write gives its client; false
// when the write only found the socket closed or the peer gone. A write
// that loses the race with the client's own close — its close frame and
// FIN are read, the socket is closed (net.ErrClosed), or its reset arrives
// first (EPIPE, ECONNRESET) — is the client's ordinary close, counted as
// ClosedByClient unless something else set a reason; only a write that
// fails on a socket the peer did not end is a write error.
func writeFailure(err error) (Reason, bool) {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return Reason{}, false
	}
	return closeWriteError, true
}

// CloseWith sends a close frame with r's code and text and stops all
// further writes; the client closes its side in answer, and its socket is
// closed after the close grace if it does not. The close is counted under
// r's label. Only the first close counts.
func (c *Client) CloseWith(r Reason) {
	if !c.state.CompareAndSwap(stateOpen, stateClosing) {
		return
	}
	c.setReason(r.label)
	if c.isSSE() {
		c.closeSSE(r) // sse.go
		return
	}
	var b [2 + 2 + 123]byte
	frame := wire.AppendCloseFrame(b[:0], r.code, r.text)
	// The close frame may pass the unsent cap: the socket layer's own cap
	// leaves room for it.
	c.unsent.Add(int64(len(frame)))
	if err := c.put(frame); err != nil {
		c.unsent.Add(-int64(len(frame)))
	}
	if s := c.shard; s != nil {
		s.mu.Lock()
		s.closes = append(s.closes, closing{c: c, at: c.h.Now() + int64(c.h.cfg.CloseGrace)})
		s.mu.Unlock()
	} else {
		_ = c.conn.Close()
	}
}

// Closing reports whether a close was started; such a client ignores
// further messages.
func (c *Client) Closing() bool { return c.state.Load() != stateOpen }

// SetCloseReason records why the socket is about to close, when the socket
// layer closes it itself (an oversized message, a protocol error).
// The close is counted under r's label.
func (c *Client) SetCloseReason(r Reason) { c.setReason(r.label) }

func (c *Client) setReason(why string) {
	r := why
	c.reason.CompareAndSwap(nil, &r)
}
