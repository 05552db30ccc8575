package frameguard

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unicode/utf8"
)

// refStop is where the reference reading expects Scan to stop: an empty
// message ending at At, or a violation in the frame starting at At.
type refStop struct {
	At  int
	Ev  Event
	Err error
}

// reference is a plain, whole-buffer reading of RFC 6455 §5 and §8.1 for
// client frames, written independently of Scan. It returns where Scan
// must stop (empty messages, then the first violation, if any) and where
// each frame whose header is complete starts.
func reference(s []byte, maxMsg uint64, deflate bool) (stops []refStop, headers []int) {
	if maxMsg == 0 {
		maxMsg = ^uint64(0)
	}
	inMsg, textFrag := false, false
	var msgOp byte
	var msgLen uint64
	var text []byte // a fragmented text message so far, unmasked
	i := 0
	for {
		if len(s)-i < 2 {
			return stops, headers
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
			return stops, headers
		}
		headers = append(headers, i)
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
		fail := func(err error) ([]refStop, []int) { return append(stops, refStop{i, None, err}), headers }
		if length >= 1<<63 {
			return fail(ErrBadLength)
		}
		if b1&0x80 == 0 {
			return fail(ErrUnmasked)
		}
		if !(op <= 2 || op >= 8 && op <= 10) {
			return fail(ErrReservedOpcode)
		}
		if b0&0x30 != 0 {
			return fail(ErrReservedBits)
		}
		if b0&0x40 != 0 && (!deflate || (op != 1 && op != 2)) {
			return fail(ErrReservedBits)
		}
		avail := min(length, uint64(len(s)-end))
		if isControl {
			if !isFin {
				return fail(ErrControlFragmented)
			}
			if length > 125 {
				return fail(ErrControlTooBig)
			}
		} else {
			if op == 0 && !inMsg {
				return fail(ErrNoMessage)
			}
			if op != 0 && inMsg {
				return fail(ErrInterleaved)
			}
			if op != 0 {
				msgLen, msgOp, text = 0, op, nil
				textFrag = op == 1 && !isFin && b0&0x40 == 0
			}
			msgLen += length
			if msgLen > maxMsg {
				return fail(ErrTooBig)
			}
			if textFrag {
				key := s[end-4 : end]
				for j, c := range s[end : end+int(avail)] {
					text = append(text, c^key[j%4])
				}
				if !utf8Prefix(text) || isFin && avail == length && !utf8.Valid(text) {
					return fail(ErrInvalidUTF8)
				}
			}
			inMsg = !isFin
			if isFin && msgLen == 0 {
				ev := EmptyText
				if msgOp == 2 {
					ev = EmptyBinary
				}
				stops = append(stops, refStop{end, ev, nil})
			}
		}
		if avail < length {
			return stops, headers
		}
		i = end + int(length)
	}
}

// utf8Prefix reports whether b begins some valid UTF-8 text: it is valid,
// or valid but for an incomplete last character that some continuation
// bytes would complete. The second byte's allowed range always holds 0x80
// or 0xBF, and later bytes may be anything from 0x80 to 0xBF, so trying
// those two fillers is enough.
func utf8Prefix(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	for k := 1; k <= 3 && k <= len(b); k++ {
		tail := b[len(b)-k:]
		size := 0
		switch c := tail[0]; {
		case c >= 0xC2 && c <= 0xDF:
			size = 2
		case c >= 0xE0 && c <= 0xEF:
			size = 3
		case c >= 0xF0 && c <= 0xF4:
			size = 4
		}
		if size <= k || !utf8.Valid(b[:len(b)-k]) {
			continue
		}
		for _, filler := range []byte{0x80, 0xBF} {
			if utf8.Valid(append(bytes.Clone(tail), bytes.Repeat([]byte{filler}, size-k)...)) {
				return true
			}
		}
	}
	return false
}

// scanCut feeds stream to g in chunks cut where cuts says and returns
// where Scan stopped, as the reference does.
func scanCut(t *testing.T, g *Guard, stream, cuts []byte) []refStop {
	var stops []refStop
	pos, rest := 0, stream
	for i := 0; len(rest) > 0; i++ {
		k := len(rest)
		if i < len(cuts) {
			k = min(k, int(cuts[i])+1)
		}
		chunk := rest[:k]
		for len(chunk) > 0 {
			n, ev, err := g.Scan(chunk)
			if err != nil {
				at := pos + n
				if n == 0 { // the frame began in an earlier chunk
					at = -1
				}
				return append(stops, refStop{at, None, err})
			}
			if ev == None {
				if n != len(chunk) {
					t.Fatalf("scan took %d of %d bytes with nothing to report", n, len(chunk))
				}
				pos += n
				break
			}
			pos += n
			stops = append(stops, refStop{pos, ev, nil})
			chunk = chunk[n:]
		}
		rest = rest[k:]
	}
	return stops
}

// sameStops compares stops with the reference's; a violation in a frame
// that began in an earlier chunk (At -1) matches one at or before the
// chunk's start.
func sameStops(got, want []refStop) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Ev != w.Ev || g.Err != w.Err || g.At != w.At && g.At != -1 {
			return false
		}
	}
	return true
}

// FuzzGuard feeds a stream to the guard in chunks cut where cuts says and
// checks that its verdicts (empty messages, the first violation and where
// its frame starts) do not depend on the cuts and agree with the reference
// reading. It then scans again with a frame budget that the clock never
// refills, cut off halfway through the frames, and expects ErrFrameRate
// at the first frame over it.
func FuzzGuard(f *testing.F) {
	ping := frame(fin|0x9, []byte("x"), false)
	f.Add(cat(frame(0x1, []byte("ab"), false), ping, frame(fin, []byte("cd"), false)), []byte{3, 1, 7}, false, uint16(64))
	f.Add(frame(fin|0x1, []byte("hi"), true), []byte{1}, false, uint16(64))
	f.Add(frame(fin|rs1|0x2, make([]byte, 200), false), []byte{2, 2, 200}, true, uint16(300))
	f.Add(cat(frame(0x2, make([]byte, 40), false), frame(fin, make([]byte, 40), false)), []byte{}, false, uint16(64))
	f.Add([]byte{fin | 0xB, 0x80, 1, 2, 3, 4}, []byte{0}, false, uint16(10))
	f.Add(cat(frame(fin|0x1, nil, false), frame(0x2, nil, false), ping, frame(fin, nil, false)), []byte{5, 0}, false, uint16(0))
	f.Add(cat(frame(0x1, []byte("a\xe2\x82"), false), frame(fin, []byte("\xac"), false), frame(0x1, []byte("\xe0\x80"), false)), []byte{6, 2}, false, uint16(64))
	f.Add(cat(frame(0x1, []byte("\xf0\x9f"), false), ping, frame(0x0, []byte("\x98"), false), frame(fin, []byte("\x80!"), false)), []byte{9, 1, 3}, true, uint16(64))
	f.Fuzz(func(t *testing.T, stream, cuts []byte, deflate bool, maxMsg uint16) {
		want, headers := reference(stream, uint64(maxMsg), deflate)
		var g Guard
		g.Reset(&Limits{MaxMessage: int(maxMsg)}, deflate)
		if got := scanCut(t, &g, stream, cuts); !sameStops(got, want) {
			t.Fatalf("guard: %+v; reference: %+v", got, want)
		}
		if len(headers) < 2 {
			return
		}
		burst := len(headers) / 2
		cutoff := headers[burst]
		var budgeted []refStop
		for _, s := range want {
			if s.At > cutoff || s.Err != nil && s.At == cutoff {
				break
			}
			budgeted = append(budgeted, s)
		}
		if len(budgeted) == 0 || budgeted[len(budgeted)-1].Err == nil {
			budgeted = append(budgeted, refStop{cutoff, None, ErrFrameRate})
		}
		g.Reset(&Limits{MaxMessage: int(maxMsg), FrameRate: 1, FrameBurst: burst, Clock: func() int64 { return 0 }}, deflate)
		if got := scanCut(t, &g, stream, cuts); !sameStops(got, budgeted) {
			t.Fatalf("guard with a budget of %d frames: %+v; want %+v", burst, got, budgeted)
		}
	})
}
