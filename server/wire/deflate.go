package wire

import (
	"bytes"
	"compress/flate"
	"sync"
)

// MinDeflate is the smallest payload worth compressing: below it the
// deflate framing costs more than it saves.
const MinDeflate = 256

var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// DeflateFrame returns a final frame of opcode op whose payload is payload
// compressed for permessage-deflate (RFC 7692) without context takeover, so
// that the same bytes can go to every client that negotiated it. ok is
// false when compressing does not make the message smaller.
func DeflateFrame(op byte, payload []byte) (frame []byte, ok bool) {
	if len(payload) < MinDeflate {
		return nil, false
	}
	var buf bytes.Buffer
	buf.Grow(len(payload)/2 + 16)
	w := deflaters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(payload)
	_ = w.Flush()
	deflaters.Put(w)
	out := buf.Bytes()
	out = out[:len(out)-4] // drop the 00 00 ff ff that ends a sync flush
	if len(out) >= len(payload) {
		return nil, false
	}
	frame = AppendFrame(make([]byte, 0, len(out)+MaxHeader), op, out)
	frame[0] |= 0x40 // RSV1: compressed
	return frame, true
}

// Payload returns the payload of an unmasked frame.
func Payload(frame []byte) []byte {
	switch n := frame[1] & 0x7F; n {
	case 126:
		return frame[4:]
	case 127:
		return frame[10:]
	default:
		return frame[2:]
	}
}
