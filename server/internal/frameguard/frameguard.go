// Package frameguard checks what a WebSocket client sends against RFC 6455
// before nbio's parser sees it, so that every violation is answered with
// the close code the RFC asks for (nbio answers some with the wrong code
// and some with none, and does not check masking at all).
//
// A Guard is an incremental frame-header scanner: it keeps a few bytes of
// state per connection (the payload bytes left in the current frame, a
// partial header of at most 14 bytes, the size of the message being
// reassembled and whether one is in progress), looks only at headers and
// skips payload bytes without reading them. Text payloads are checked for
// UTF-8 where whole messages are available (the gateway's message handler),
// not here. CheckHandshake does the same for the opening handshake.
//
// # Concurrency contract
//
// A Guard belongs to one connection and is used by one goroutine at a time
// (nbio reads a connection on one poller goroutine); it has no locks.
// Scan, Drain and CheckHandshake allocate nothing. The package has no
// global mutable state.
package frameguard

import (
	"encoding/binary"

	"wspush/server/wire"
)

// Violation is a client frame the RFC says must fail the connection: the
// server answers with a close frame carrying Code and Reason.
type Violation struct {
	Code   uint16
	Reason string
}

func (v *Violation) Error() string { return "frameguard: " + v.Reason }

// Close codes used for violations.
const (
	CodeProtocol = 1002
	CodeTooBig   = 1009
)

// The violations Scan reports. They are shared values: compare them with
// ==, never change them.
var (
	ErrUnmasked          = &Violation{CodeProtocol, "client frames must be masked"}
	ErrReservedBits      = &Violation{CodeProtocol, "reserved bits set"}
	ErrReservedOpcode    = &Violation{CodeProtocol, "reserved opcode"}
	ErrControlFragmented = &Violation{CodeProtocol, "fragmented control frame"}
	ErrControlTooBig     = &Violation{CodeProtocol, "control frame over 125 bytes"}
	ErrBadLength         = &Violation{CodeProtocol, "payload length has its most significant bit set"}
	ErrNoMessage         = &Violation{CodeProtocol, "continuation frame with no message in progress"}
	ErrInterleaved       = &Violation{CodeProtocol, "new data message before the fragmented one ended"}
	ErrTooBig            = &Violation{CodeTooBig, "message too big"}
)

// MaxHeader is the largest client frame header: 2 bytes, 8 of extended
// length and a 4-byte masking key.
const MaxHeader = 14

// Guard is one connection's scanner; the zero value is not ready, call
// Reset first.
type Guard struct {
	remain  uint64 // payload bytes left in the current frame
	msgLen  uint64 // payload bytes of the data message in progress
	max     uint64 // cap on a data message's payload bytes
	hdr     [MaxHeader]byte
	hlen    uint8 // bytes in hdr
	frag    bool  // a fragmented data message is in progress
	deflate bool  // permessage-deflate was negotiated: RSV1 may start a message
	lost    bool  // after a violation: the frame boundaries are unknown
}

// Reset readies g for a new connection: maxMessage caps a data message's
// payload (over it: ErrTooBig, close 1009); deflate says whether
// permessage-deflate was negotiated, which allows RSV1 on the first frame
// of a data message.
func (g *Guard) Reset(maxMessage int, deflate bool) {
	*g = Guard{max: uint64(max(maxMessage, 0)), deflate: deflate}
}

// headerSize returns the length of the header that starts with b0 b1.
func headerSize(b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// Scan checks p, the next bytes the client sent. It returns nil when they
// hold no violation. Otherwise it returns the first violation and n, the
// bytes up to the end of the offending frame's header; the stream is then
// broken and only Drain may be called.
func (g *Guard) Scan(p []byte) (n int, err error) {
	return g.scan(p, true)
}

// Drain follows a stream after a violation, ignoring what is wrong with
// it, and reports whether the client has sent its close frame (its header
// is enough) or the frame boundaries can no longer be followed: either way
// there is nothing left to wait for and the socket may be closed.
func (g *Guard) Drain(p []byte) bool {
	if g.lost {
		return true
	}
	_, err := g.scan(p, false)
	return err != nil
}

// errPeerClosed ends a Drain: a close frame's header was seen.
var errPeerClosed = &Violation{CodeProtocol, "peer sent close"}

func (g *Guard) scan(p []byte, strict bool) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if g.remain > 0 {
			if uint64(len(p)) <= g.remain {
				g.remain -= uint64(len(p))
				return total, nil
			}
			p = p[g.remain:]
			g.remain = 0
		}
		var h []byte
		if g.hlen == 0 && len(p) >= 2 && len(p) >= headerSize(p[1]) {
			// The whole header is here: read it in place.
			h = p[:headerSize(p[1])]
			p = p[len(h):]
		} else {
			for g.hlen < 2 && len(p) > 0 {
				g.hdr[g.hlen] = p[0]
				g.hlen++
				p = p[1:]
			}
			if g.hlen < 2 {
				return total, nil
			}
			need := headerSize(g.hdr[1])
			k := copy(g.hdr[g.hlen:need], p)
			g.hlen += uint8(k)
			p = p[k:]
			if int(g.hlen) < need {
				return total, nil
			}
			h = g.hdr[:need]
			g.hlen = 0
		}
		if err := g.frame(h, strict); err != nil {
			return total - len(p), err
		}
	}
	return total, nil
}

// frame checks one whole header and sets the payload to skip.
func (g *Guard) frame(h []byte, strict bool) error {
	b0, b1 := h[0], h[1]
	op := b0 & 0x0F
	var length uint64
	switch l := b1 & 0x7F; l {
	case 126:
		length = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		length = binary.BigEndian.Uint64(h[2:10])
		if length>>63 != 0 {
			g.lost = true
			return ErrBadLength
		}
	default:
		length = uint64(l)
	}
	g.remain = length
	if !strict {
		if op == wire.OpClose {
			return errPeerClosed
		}
		return nil
	}
	fin := b0&0x80 != 0
	control := op&0x8 != 0
	switch {
	case b1&0x80 == 0:
		return ErrUnmasked
	case op > wire.OpBinary && op < wire.OpClose || op > wire.OpPong:
		return ErrReservedOpcode
	case b0&0x30 != 0:
		return ErrReservedBits
	case b0&0x40 != 0 && !(g.deflate && (op == wire.OpText || op == wire.OpBinary)):
		return ErrReservedBits
	case control && !fin:
		return ErrControlFragmented
	case control && length > 125:
		return ErrControlTooBig
	case control:
		return nil
	case op == wire.OpCont && !g.frag:
		return ErrNoMessage
	case op != wire.OpCont && g.frag:
		return ErrInterleaved
	}
	size := length
	if op == wire.OpCont {
		size += g.msgLen
	}
	if size > g.max {
		return ErrTooBig
	}
	g.frag, g.msgLen = !fin, size
	if fin {
		g.msgLen = 0
	}
	return nil
}
