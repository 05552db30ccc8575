package wire

import "encoding/binary"

// WebSocket opcodes (RFC 6455 §5.2).
const (
	OpCont   byte = 0x0
	OpText   byte = 0x1
	OpBinary byte = 0x2
	OpClose  byte = 0x8
	OpPing   byte = 0x9
	OpPong   byte = 0xA
)

// MaxHeader is the size of the largest unmasked frame header: 2 bytes, then
// 8 bytes of extended length.
const MaxHeader = 10

var headerRoom [MaxHeader]byte

// BeginFrame empties buf and reserves MaxHeader bytes in front of the
// payload that the caller appends next; EndFrame then fills in the header.
// Encoding the payload first lets a frame be built in one pass with no copy.
func BeginFrame(buf []byte) []byte {
	return append(buf[:0], headerRoom[:]...)
}

// EndFrame finishes a frame begun with BeginFrame: it writes a final,
// unmasked header for opcode op in front of the payload buf[MaxHeader:] and
// returns the frame, a subslice of buf.
func EndFrame(buf []byte, op byte) []byte {
	n := len(buf) - MaxHeader
	var start int
	switch {
	case n < 126:
		start = MaxHeader - 2
		buf[start+1] = byte(n)
	case n <= 0xFFFF:
		start = MaxHeader - 4
		buf[start+1] = 126
		binary.BigEndian.PutUint16(buf[start+2:], uint16(n))
	default:
		start = 0
		buf[1] = 127
		binary.BigEndian.PutUint64(buf[2:], uint64(n))
	}
	buf[start] = 0x80 | op
	return buf[start:]
}

// AppendFrame appends one whole final, unmasked frame carrying payload.
func AppendFrame(dst []byte, op byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|op, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|op, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|op, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// AppendCloseFrame appends a close frame with a status code and a reason.
// The reason is cut so that the payload fits a control frame (125 bytes).
func AppendCloseFrame(dst []byte, code uint16, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	dst = append(dst, 0x80|OpClose, byte(2+len(reason)), byte(code>>8), byte(code))
	return append(dst, reason...)
}

// Close codes the server sends (RFC 6455 §7.4 and wspush's own 4xxx range).
const (
	CloseNormal         uint16 = 1000
	CloseGoingAway      uint16 = 1001
	CloseProtocolError  uint16 = 1002
	CloseInvalidPayload uint16 = 1007
	ClosePolicy         uint16 = 1008
	CloseTooBig         uint16 = 1009
	CloseInternal       uint16 = 1011
	// CloseSlowConsumer: the client read too slowly and its unsent bytes
	// passed the server's cap.
	CloseSlowConsumer uint16 = 4008
)
