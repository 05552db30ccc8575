package frameguard

import (
	"encoding/binary"
	"testing"
)

// reference is a plain, whole-buffer reading of RFC 6455 §5 for client
// frames, written independently of Scan: it returns the offset just past
// the header of the first bad frame and its violation, or -1 and nil.
func reference(s []byte, maxMsg uint64, deflate bool) (int, error) {
	inMsg := false
	var msgLen uint64
	i := 0
	for {
		if len(s)-i < 2 {
			return -1, nil
		}
		b0, b1 := s[i], s[i+1]
		hl := 2
		var length uint64
		switch b1 & 0x7F {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if b1&0x80 != 0 {
			hl += 4
		}
		if len(s)-i < hl {
			return -1, nil
		}
		switch b1 & 0x7F {
		case 126:
			length = uint64(binary.BigEndian.Uint16(s[i+2:]))
		case 127:
			length = binary.BigEndian.Uint64(s[i+2:])
		default:
			length = uint64(b1 & 0x7F)
		}
		end := i + hl
		op := b0 & 0xF
		isFin := b0&0x80 != 0
		isControl := op >= 8
		if length >= 1<<63 {
			return end, ErrBadLength
		}
		if b1&0x80 == 0 {
			return end, ErrUnmasked
		}
		if !(op <= 2 || op >= 8 && op <= 10) {
			return end, ErrReservedOpcode
		}
		if b0&0x30 != 0 {
			return end, ErrReservedBits
		}
		if b0&0x40 != 0 && (!deflate || (op != 1 && op != 2)) {
			return end, ErrReservedBits
		}
		if isControl {
			if !isFin {
				return end, ErrControlFragmented
			}
			if length > 125 {
				return end, ErrControlTooBig
			}
		} else {
			if op == 0 && !inMsg {
				return end, ErrNoMessage
			}
			if op != 0 && inMsg {
				return end, ErrInterleaved
			}
			if op != 0 {
				msgLen = 0
			}
			msgLen += length
			if msgLen > maxMsg {
				return end, ErrTooBig
			}
			inMsg = !isFin
		}
		if uint64(len(s)-end) < length {
			return -1, nil
		}
		i = end + int(length)
	}
}

// FuzzGuard feeds a stream to the guard in chunks cut where cuts says and
// checks that the verdict and its offset do not depend on the cuts and
// agree with the reference reading.
func FuzzGuard(f *testing.F) {
	ping := frame(fin|0x9, []byte("x"), false)
	f.Add(cat(frame(0x1, []byte("ab"), false), ping, frame(fin, []byte("cd"), false)), []byte{3, 1, 7}, false, uint16(64))
	f.Add(frame(fin|0x1, []byte("hi"), true), []byte{1}, false, uint16(64))
	f.Add(frame(fin|rs1|0x2, make([]byte, 200), false), []byte{2, 2, 200}, true, uint16(300))
	f.Add(cat(frame(0x2, make([]byte, 40), false), frame(fin, make([]byte, 40), false)), []byte{}, false, uint16(64))
	f.Add([]byte{fin | 0xB, 0x80, 1, 2, 3, 4}, []byte{0}, false, uint16(10))
	f.Fuzz(func(t *testing.T, stream, cuts []byte, deflate bool, maxMsg uint16) {
		wantN, want := reference(stream, uint64(maxMsg), deflate)
		var g Guard
		g.Reset(int(maxMsg), deflate)
		gotN, pos := -1, 0
		var got error
		rest := stream
		for i := 0; len(rest) > 0; i++ {
			k := len(rest)
			if i < len(cuts) {
				k = min(k, int(cuts[i])+1)
			}
			n, err := g.Scan(rest[:k])
			if err != nil {
				got, gotN = err, pos+n
				// Drain must accept whatever follows without panicking.
				g.Drain(rest[n:])
				break
			}
			if n != k {
				t.Fatalf("scan consumed %d of %d bytes without an error", n, k)
			}
			pos += k
			rest = rest[k:]
		}
		if got != want || gotN != wantN {
			t.Fatalf("guard: %v at %d; reference: %v at %d", got, gotN, want, wantN)
		}
	})
}
