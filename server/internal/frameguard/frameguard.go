// Package frameguard checks what a WebSocket client sends against RFC 6455
// before nbio's parser sees it, so that every violation is answered with
// the close code the RFC asks for (nbio answers some with the wrong code
// and some with none, and does not check masking at all).
//
// A Guard is an incremental frame-header scanner: it keeps a few bytes of
// state per connection (the payload bytes left in the current frame, a
// partial header of at most 14 bytes, the size and kind of the message
// being reassembled, a frame budget) and looks only at headers, skipping
// payload bytes without reading them, with one exception: the payload of
// a fragmented, uncompressed text message is unmasked and checked for
// UTF-8 as it arrives (utf8.go), so that an invalid first fragment fails
// the connection at once. Whole text messages are checked by the gateway's
// message handler. Scan also reports where an empty data message ends,
// since nbio never delivers those, and counts every frame against a
// per-connection token bucket (budget.go). CheckHandshake checks the
// opening handshake.
//
// # Concurrency contract
//
// Limits are shared by all guards and read-only once in use. A Guard
// belongs to one connection and is used by one goroutine at a time (nbio
// reads a connection on one poller goroutine); it has no locks. Scan and
// CheckHandshake allocate nothing. The package's only global state is the
// default clock's origin, set at initialisation.
package frameguard

import (
	"encoding/binary"
	"math"

	"wspush/server/wire"
)

// Violation is a client frame the RFC says must fail the connection: the
// server answers with a close frame carrying Code and Reason.
type Violation struct {
	Code   uint16
	Reason string
}

func (v *Violation) Error() string { return "frameguard: " + v.Reason }

// The violations Scan reports. They are shared values: compare them with
// ==, never change them.
var (
	ErrUnmasked          = &Violation{wire.CloseProtocolError, "client frames must be masked"}
	ErrReservedBits      = &Violation{wire.CloseProtocolError, "reserved bits set"}
	ErrReservedOpcode    = &Violation{wire.CloseProtocolError, "reserved opcode"}
	ErrControlFragmented = &Violation{wire.CloseProtocolError, "fragmented control frame"}
	ErrControlTooBig     = &Violation{wire.CloseProtocolError, "control frame over 125 bytes"}
	ErrBadLength         = &Violation{wire.CloseProtocolError, "payload length has its most significant bit set"}
	ErrNoMessage         = &Violation{wire.CloseProtocolError, "continuation frame with no message in progress"}
	ErrInterleaved       = &Violation{wire.CloseProtocolError, "new data message before the fragmented one ended"}
	ErrInvalidUTF8       = &Violation{wire.CloseInvalidPayload, "text message is not UTF-8"}
	ErrFrameRate         = &Violation{wire.ClosePolicy, "frame rate limit"}
	ErrTooBig            = &Violation{wire.CloseTooBig, "message too big"}
)

// Event is what else than a violation makes Scan stop early.
type Event uint8

// Events.
const (
	None        Event = iota // the input was scanned to its end
	EmptyText                // an empty text message ends at the returned offset
	EmptyBinary              // an empty binary message ends at the returned offset
)

// MaxHeader is the largest client frame header: 2 bytes, 8 of extended
// length and a 4-byte masking key.
const MaxHeader = 14

// Limits are what guards enforce; the zero value of each field means its
// default. Set them before the first Reset that uses them and do not
// change them afterwards.
type Limits struct {
	// MaxMessage caps a data message's payload bytes; over it Scan reports
	// ErrTooBig (close 1009). Default 0: no cap.
	MaxMessage int
	// FrameRate caps the frames a connection may send per second, of any
	// kind (data, continuation, control), with bursts of FrameBurst
	// (default: one second's worth); over it Scan reports ErrFrameRate
	// (close 1008). Default 0: no cap.
	FrameRate, FrameBurst int
	// Clock returns the time in ns from any fixed origin (default: the
	// monotonic clock). The guard reads it when a connection starts and
	// when it has used up its frame credit, once per FrameBurst frames at
	// most.
	Clock func() int64
}

// Guard is one connection's scanner; the zero value is not ready, call
// Reset first.
type Guard struct {
	lim    *Limits
	remain uint64 // payload bytes left in the current frame
	msgLen uint64 // payload bytes of the data message in progress
	last   int64  // frame budget: when credit was last refilled (Clock)
	credit uint32 // frame budget: frames left before the clock is read
	hdr    [MaxHeader]byte
	hlen   uint8 // bytes in hdr
	msgOp  uint8 // opcode of the data message in progress
	frag   bool  // a fragmented data message is in progress
	// deflate: permessage-deflate was negotiated, so RSV1 may start a
	// message.
	deflate bool
	u       utf8Stream // the fragmented text message's UTF-8 check
}

// Reset readies g for a new connection under lim; deflate says whether
// permessage-deflate was negotiated, which allows RSV1 on the first frame
// of a data message.
func (g *Guard) Reset(lim *Limits, deflate bool) {
	*g = Guard{lim: lim, deflate: deflate}
	g.resetBudget()
}

// maxMessage is the message size cap, lim.MaxMessage or none. It is not
// kept in the guard: a guard is per connection, and its size is what a
// connection's session costs (see the gateway's session).
func (g *Guard) maxMessage() uint64 {
	if m := g.lim.MaxMessage; m > 0 {
		return uint64(m)
	}
	return math.MaxUint64
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

// Scan checks p, the next bytes the client sent, and reports how many of
// them the parser may take before something needs doing:
//
//   - n == len(p), None, nil: all of p is fine.
//   - EmptyText or EmptyBinary, nil: p[:n] is fine and ends with an empty
//     data message, which nbio would not deliver; Scan again from p[n:].
//   - a violation: the offending frame starts at p[n] (n is 0 when it
//     started in an earlier call), so p[:n] holds only whole, valid frames
//     (or the end of one begun earlier). The stream is then broken: do not
//     call Scan again.
//
// Scan is over gocyclo's 15 on purpose: it runs on every read, and its
// fast paths (skipping a payload, a small final frame) stay inline in
// this loop; split into methods it measured 25% slower per small frame
// (BenchmarkScan/small-frames, 4.3 → 5.4 ns). frame holds the checks.
func (g *Guard) Scan(p []byte) (n int, ev Event, err error) {
	i, start := 0, 0 // start: where the current frame began in p
	for i < len(p) {
		if g.remain > 0 {
			k := len(p) - i
			if uint64(k) > g.remain {
				k = int(g.remain)
			}
			if g.u.on && !g.u.feed(p[i:i+k]) {
				return start, None, ErrInvalidUTF8
			}
			g.remain -= uint64(k)
			i += k
			if g.remain > 0 {
				return len(p), None, nil
			}
			if g.u.on && !g.u.end() {
				return start, None, ErrInvalidUTF8
			}
			continue
		}
		var h []byte
		if g.hlen == 0 {
			start = i
			// The common case first: a whole, small, non-empty, final text
			// or binary frame, masked, with no message in progress, within
			// the size cap and the frame credit. All that frame() would do
			// for it is done here.
			if len(p)-i >= 6 {
				b0, l := p[i], uint64(p[i+1]^0x80) // l > 127 if unmasked
				if (b0 == 0x81 || b0 == 0x82) && l-1 < 125 && l <= g.maxMessage() && g.credit != 0 && !g.frag {
					g.credit--
					g.remain = l
					i += 6
					continue
				}
			}
		}
		if g.hlen == 0 && len(p)-i >= 2 && len(p)-i >= headerSize(p[i+1]) {
			// The whole header is here: read it in place.
			h = p[i : i+headerSize(p[i+1])]
			i += len(h)
		} else {
			for g.hlen < 2 && i < len(p) {
				g.hdr[g.hlen] = p[i]
				g.hlen++
				i++
			}
			if g.hlen < 2 {
				return len(p), None, nil
			}
			need := headerSize(g.hdr[1])
			k := copy(g.hdr[g.hlen:need], p[i:])
			g.hlen += uint8(k)
			i += k
			if int(g.hlen) < need {
				return len(p), None, nil
			}
			h = g.hdr[:need]
			g.hlen = 0
		}
		ev, err := g.frame(h)
		if err != nil {
			return start, None, err
		}
		if g.remain == 0 && g.u.on && !g.u.end() {
			return start, None, ErrInvalidUTF8
		}
		if ev != None {
			return i, ev, nil
		}
	}
	return len(p), None, nil
}

// frame checks one whole header, counts the frame against the budget and
// sets the payload to skip (or check).
func (g *Guard) frame(h []byte) (Event, error) {
	if g.credit == 0 && !g.refill() {
		return None, ErrFrameRate
	}
	g.credit--
	length, err := payloadLength(h)
	if err != nil {
		return None, err
	}
	g.remain = length
	g.u.on = false
	if err := g.checkBits(h[0], h[1]); err != nil {
		return None, err
	}
	if err := g.checkSequence(h[0], length); err != nil {
		return None, err
	}
	if h[0]&0x8 != 0 { // a control frame: nothing more to track
		return None, nil
	}
	return g.data(h, length)
}

// payloadLength reads a frame's payload length from its header h.
func payloadLength(h []byte) (uint64, error) {
	switch l := h[1] & 0x7F; l {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:4])), nil
	case 127:
		length := binary.BigEndian.Uint64(h[2:10])
		if length>>63 != 0 {
			return 0, ErrBadLength
		}
		return length, nil
	default:
		return uint64(l), nil
	}
}

// checkBits refuses an unmasked frame, a reserved opcode and reserved bits
// (RSV1 is allowed on a data frame when deflate was negotiated).
func (g *Guard) checkBits(b0, b1 byte) error {
	op := b0 & 0x0F
	switch {
	case b1&0x80 == 0:
		return ErrUnmasked
	case op > wire.OpBinary && op < wire.OpClose || op > wire.OpPong:
		return ErrReservedOpcode
	case b0&0x30 != 0:
		return ErrReservedBits
	case b0&0x40 != 0 && !(g.deflate && (op == wire.OpText || op == wire.OpBinary)):
		return ErrReservedBits
	}
	return nil
}

// checkSequence refuses a fragmented or oversized control frame, a
// continuation without a message and a new message inside another.
func (g *Guard) checkSequence(b0 byte, length uint64) error {
	op, fin := b0&0x0F, b0&0x80 != 0
	control := op&0x8 != 0
	switch {
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
	return nil
}

// data tracks the message a data frame (header h, payload length) belongs
// to: its size against the cap, UTF-8 checking of fragmented text, and the
// end of an empty message.
func (g *Guard) data(h []byte, length uint64) (Event, error) {
	b0 := h[0]
	op, fin := b0&0x0F, b0&0x80 != 0
	size := length
	if op == wire.OpCont {
		size += g.msgLen
	} else {
		g.msgOp = op
		// Only a fragmented, uncompressed text message is checked here.
		g.u.text = op == wire.OpText && !fin && b0&0x40 == 0
	}
	if size > g.maxMessage() {
		return None, ErrTooBig
	}
	if g.u.text {
		g.u.start(h[len(h)-4:], fin)
		if fin {
			g.u.text = false
		}
	}
	g.frag, g.msgLen = !fin, size
	if !fin {
		return None, nil
	}
	g.msgLen = 0
	if size == 0 {
		if g.msgOp == wire.OpText {
			return EmptyText, nil
		}
		return EmptyBinary, nil
	}
	return None, nil
}
