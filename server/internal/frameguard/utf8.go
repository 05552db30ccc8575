package frameguard

import "unicode/utf8"

// utf8Stream checks a fragmented text message for UTF-8 as its masked
// payload arrives, so that a message whose prefix can no longer be UTF-8
// fails before the rest is sent (RFC 6455 §8.1: "as soon as" it is
// invalid). It keeps the masking key of the current frame, the key offset
// of the next byte and the up to 3 bytes of a code point cut by the end of
// what has arrived.
type utf8Stream struct {
	key  [4]byte
	part [utf8.UTFMax - 1]byte // an incomplete code point: a valid prefix
	plen uint8                 // bytes in part
	koff uint8                 // key offset of the next payload byte
	on   bool                  // the current frame's payload is checked
	fin  bool                  // the current frame ends the message
	text bool                  // the message in progress is a fragmented, uncompressed text message
}

// start begins checking a frame of the message, masked with key.
func (u *utf8Stream) start(key []byte, fin bool) {
	copy(u.key[:], key)
	u.koff, u.on, u.fin = 0, true, fin
}

// feed checks the next masked payload bytes of the current frame; it
// reports false once the message so far is not a prefix of any UTF-8 text.
func (u *utf8Stream) feed(p []byte) bool {
	var buf [512]byte
	for len(p) > 0 {
		m := copy(buf[:], u.part[:u.plen])
		k := min(len(p), len(buf)-m)
		for j, c := range p[:k] {
			buf[m+j] = c ^ u.key[(int(u.koff)+j)&3]
		}
		u.koff = uint8((int(u.koff) + k) & 3)
		p = p[k:]
		b := buf[:m+k]
		// Hold back a code point cut by the end of b. utf8.FullRune is
		// false only for a valid but incomplete encoding: an invalid one
		// counts as full and fails utf8.Valid below.
		cut := len(b)
		for j := len(b) - 1; j >= 0 && j >= len(b)-(utf8.UTFMax-1); j-- {
			if utf8.RuneStart(b[j]) {
				if !utf8.FullRune(b[j:]) {
					cut = j
				}
				break
			}
		}
		if !utf8.Valid(b[:cut]) {
			return false
		}
		u.plen = uint8(copy(u.part[:], b[cut:]))
	}
	return true
}

// end finishes the current frame; it reports false when the frame ends
// the message in the middle of a code point.
func (u *utf8Stream) end() bool {
	u.on = false
	if !u.fin {
		return true
	}
	ok := u.plen == 0
	u.plen = 0
	return ok
}
