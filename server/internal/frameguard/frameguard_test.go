package frameguard

import (
	"encoding/binary"
	"strings"
	"testing"
)

// limits returns Limits with a message cap of maxMsg and no frame cap.
func limits(maxMsg int) *Limits { return &Limits{MaxMessage: maxMsg} }

// frame builds a client frame: b0 is FIN|RSV|opcode, the payload is masked
// with a fixed key unless unmasked.
func frame(b0 byte, payload []byte, unmasked bool) []byte {
	out := []byte{b0}
	mask := byte(0x80)
	if unmasked {
		mask = 0
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mask|byte(n))
	case n <= 0xFFFF:
		out = append(out, mask|126, byte(n>>8), byte(n))
	default:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !unmasked {
		key := [4]byte{1, 2, 3, 4}
		out = append(out, key[:]...)
		for i, c := range payload {
			out = append(out, c^key[i%4])
		}
		return out
	}
	return append(out, payload...)
}

// Header first bytes; fin alone is a final continuation frame.
const (
	fin = 0x80
	rs1 = 0x40
	rs2 = 0x20
	rs3 = 0x10
)

func cat(frames ...[]byte) []byte {
	var out []byte
	for _, f := range frames {
		out = append(out, f...)
	}
	return out
}

func TestScanVerdicts(t *testing.T) {
	small := []byte(`{"type":"ping","id":1}`)
	big := make([]byte, 300)
	cases := []struct {
		name    string
		stream  []byte
		deflate bool
		want    error
	}{
		{"text", frame(fin|0x1, small, false), false, nil},
		{"binary 16-bit length", frame(fin|0x2, big, false), false, nil},
		{"empty frames", cat(frame(fin|0x1, nil, false), frame(fin|0x9, nil, false)), false, nil},
		{"fragments with ping between", cat(frame(0x1, small[:5], false), frame(fin|0x9, []byte("p"), false),
			frame(0x0, small[5:9], false), frame(fin, small[9:], false)), false, nil},
		{"close", frame(fin|0x8, []byte{3, 232}, false), false, nil},
		{"unmasked", frame(fin|0x1, small, true), false, ErrUnmasked},
		{"rsv1 without deflate", frame(fin|rs1|0x1, small, false), false, ErrReservedBits},
		{"rsv1 with deflate", frame(fin|rs1|0x1, small, false), true, nil},
		{"rsv1 on continuation", cat(frame(rs1|0x1, small, false), frame(fin|rs1, small, false)), true, ErrReservedBits},
		{"rsv1 on control", frame(fin|rs1|0x9, nil, false), true, ErrReservedBits},
		{"rsv2", frame(fin|rs2|0x1, small, false), true, ErrReservedBits},
		{"rsv3", frame(fin|rs3|0x2, small, false), true, ErrReservedBits},
		{"opcode 3", frame(fin|0x3, nil, false), false, ErrReservedOpcode},
		{"opcode 7", frame(fin|0x7, nil, false), false, ErrReservedOpcode},
		{"opcode B", frame(fin|0xB, nil, false), false, ErrReservedOpcode},
		{"opcode F", frame(fin|0xF, nil, false), false, ErrReservedOpcode},
		{"fragmented ping", frame(0x9, nil, false), false, ErrControlFragmented},
		{"fragmented close", frame(0x8, nil, false), false, ErrControlFragmented},
		{"126-byte ping", frame(fin|0x9, make([]byte, 126), false), false, ErrControlTooBig},
		{"125-byte pong", frame(fin|0xA, make([]byte, 125), false), false, nil},
		{"continuation first", frame(fin, small, false), false, ErrNoMessage},
		{"text inside fragments", cat(frame(0x1, small, false), frame(fin|0x1, small, false)), false, ErrInterleaved},
		{"at the cap", frame(fin|0x2, make([]byte, 1024), false), false, nil},
		{"over the cap", frame(fin|0x2, make([]byte, 1025), false), false, ErrTooBig},
		{"fragments over the cap", cat(frame(0x2, make([]byte, 600), false), frame(fin, make([]byte, 425), false)), false, ErrTooBig},
		{"cap counts per message", cat(frame(fin|0x2, make([]byte, 1000), false), frame(fin|0x2, make([]byte, 1000), false)), false, nil},
		{"length msb", []byte{fin | 0x2, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, false, ErrBadLength},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for split := 0; split <= len(tc.stream); split++ {
				var g Guard
				g.Reset(limits(1024), tc.deflate)
				err := scanAll(&g, tc.stream[:split])
				if err == nil {
					err = scanAll(&g, tc.stream[split:])
				}
				if err != tc.want {
					t.Fatalf("split at %d: got %v, want %v", split, err, tc.want)
				}
			}
			// Byte by byte.
			var g Guard
			g.Reset(limits(1024), tc.deflate)
			var err error
			for i := 0; i < len(tc.stream) && err == nil; i++ {
				err = scanAll(&g, tc.stream[i:i+1])
			}
			if err != tc.want {
				t.Fatalf("byte by byte: got %v, want %v", err, tc.want)
			}
		})
	}
}

// scanAll scans p to its end past empty-message events.
func scanAll(g *Guard, p []byte) error {
	for {
		n, ev, err := g.Scan(p)
		if err != nil || ev == None {
			return err
		}
		p = p[n:]
	}
}

func TestScanStopsAtTheOffendingFrame(t *testing.T) {
	good := frame(fin|0x1, []byte("hello"), false)
	bad := frame(fin|0x1, []byte("world"), true)
	stream := cat(good, frame(fin|0x9, nil, false), bad, frame(fin|0x8, []byte{3, 232}, false))
	var g Guard
	g.Reset(limits(1024), false)
	n, ev, err := g.Scan(stream)
	if err != ErrUnmasked || ev != None || n != len(good)+6 {
		t.Fatalf("got n=%d %v %v, want n=%d %v", n, ev, err, len(good)+6, ErrUnmasked)
	}
	// A frame whose header began in an earlier read starts at 0.
	g.Reset(limits(1024), false)
	if n, _, err := g.Scan(good[:len(good)-2]); err != nil || n != len(good)-2 {
		t.Fatalf("got n=%d %v", n, err)
	}
	if n, _, err := g.Scan(cat(good[len(good)-2:], bad[:1])); err != nil || n != 3 {
		t.Fatalf("got n=%d %v", n, err)
	}
	if n, _, err := g.Scan(bad[1:]); err != ErrUnmasked || n != 0 {
		t.Fatalf("got n=%d %v, want 0 %v", n, err, ErrUnmasked)
	}
}

func TestScanReportsEmptyMessages(t *testing.T) {
	text := frame(fin|0x1, []byte("hi"), false)
	emptyText := frame(fin|0x1, nil, false)
	emptyFrag := cat(frame(0x2, nil, false), frame(fin|0x9, []byte("p"), false), frame(0x0, nil, false), frame(fin, nil, false))
	stream := cat(text, emptyText, emptyFrag, text, frame(fin|rs1|0x1, nil, false))
	var g Guard
	g.Reset(limits(1024), true)
	type stop struct {
		at int
		ev Event
	}
	var got []stop
	p, pos := stream, 0
	for {
		n, ev, err := g.Scan(p)
		if err != nil {
			t.Fatal(err)
		}
		pos += n
		if ev == None {
			break
		}
		got = append(got, stop{pos, ev})
		p = p[n:]
	}
	want := []stop{{len(text) + len(emptyText), EmptyText}, {len(text) + len(emptyText) + len(emptyFrag), EmptyBinary}, {len(stream), EmptyText}}
	if len(got) != len(want) || pos != len(stream) {
		t.Fatalf("got %v (scanned %d of %d), want %v", got, pos, len(stream), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	// A zero-length final fragment of a non-empty message is no event.
	g.Reset(limits(1024), false)
	if n, ev, err := g.Scan(cat(frame(0x1, []byte("x"), false), frame(fin, nil, false))); n != 13 || ev != None || err != nil {
		t.Fatalf("got n=%d %v %v", n, ev, err)
	}
}

func TestScanChecksFragmentedTextForUTF8(t *testing.T) {
	euro := "\u20ac" // 3 bytes
	cases := []struct {
		name   string
		stream []byte
		want   error
		at     int // where the offending frame starts
	}{
		{"valid, a character cut between fragments", cat(frame(0x1, []byte("a"+euro[:1]), false), frame(0x0, []byte(euro[1:2]), false),
			frame(fin|0x9, []byte("p"), false), frame(fin, []byte(euro[2:]+"z"), false)), nil, 0},
		{"first fragment invalid", cat(frame(0x1, []byte("ok\xc3\x28"), false)), ErrInvalidUTF8, 0},
		{"invalid lead byte", cat(frame(0x1, []byte("ok\xff"), false)), ErrInvalidUTF8, 0},
		{"surrogate prefix", cat(frame(0x1, []byte("\xed\xa0"), false)), ErrInvalidUTF8, 0},
		{"overlong prefix", cat(frame(0x1, []byte("\xe0\x80"), false)), ErrInvalidUTF8, 0},
		{"second fragment invalid", cat(frame(0x1, []byte("ok"), false), frame(0x0, []byte("\xe2\x82x"), false)), ErrInvalidUTF8, 8},
		{"message ends in a character", cat(frame(0x1, []byte("ok"), false), frame(fin, []byte("\xe2\x82"), false)), ErrInvalidUTF8, 8},
		{"message ends in an empty fragment", cat(frame(0x1, []byte("\xe2"), false), frame(fin, nil, false)), ErrInvalidUTF8, 7},
		{"binary is not checked", cat(frame(0x2, []byte("\xff"), false), frame(fin, []byte("\xfe"), false)), nil, 0},
		{"whole text frames are left to the handler", frame(fin|0x1, []byte("\xff"), false), nil, 0},
		{"compressed text is not checked", cat(frame(rs1|0x1, []byte("\xff"), false), frame(fin, []byte("\xfe"), false)), nil, 0},
		{"long valid message", cat(frame(0x1, []byte(strings.Repeat("é€x", 300)), false), frame(fin, []byte(strings.Repeat("€", 300)), false)), nil, 0},
		{"long message invalid late", cat(frame(0x1, []byte(strings.Repeat("é€x", 300)+"\xc0"), false)), ErrInvalidUTF8, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for split := 0; split <= len(tc.stream); split++ {
				var g Guard
				g.Reset(limits(1<<20), true)
				n, _, err := g.Scan(tc.stream[:split])
				at, early := n, false
				if err == nil {
					n, _, err = g.Scan(tc.stream[split:])
					// n == 0: the frame began at split or in the first part.
					at, early = split+n, n == 0
				}
				if err != tc.want {
					t.Fatalf("split at %d: got %v, want %v", split, err, tc.want)
				}
				if err != nil && at != tc.at && !(early && tc.at <= split) {
					t.Fatalf("split at %d: violation at %d, want %d", split, at, tc.at)
				}
			}
		})
	}
}

func TestFrameBudget(t *testing.T) {
	now := int64(1e12)
	lim := &Limits{MaxMessage: 1024, FrameRate: 100, FrameBurst: 10, Clock: func() int64 { return now }}
	pong := frame(fin|0xA, nil, false)
	var g Guard
	g.Reset(lim, false)
	for i := 0; i < 10; i++ {
		if _, _, err := g.Scan(pong); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if n, _, err := g.Scan(cat(pong, pong)); err != ErrFrameRate || n != 0 {
		t.Fatalf("frame 11: n=%d %v, want %v", n, err, ErrFrameRate)
	}
	// 25 ms earn 2 frames (10 ms each), and the half frame is kept.
	g.Reset(lim, false)
	for i := 0; i < 10; i++ {
		_, _, _ = g.Scan(pong)
	}
	now += 25e6
	if n, _, err := g.Scan(cat(pong, pong, pong)); err != ErrFrameRate || n != 2*len(pong) {
		t.Fatalf("after 25ms: n=%d %v, want 2 frames then %v", n, err, ErrFrameRate)
	}
	g.Reset(lim, false)
	for i := 0; i < 10; i++ {
		_, _, _ = g.Scan(pong)
	}
	now += 25e6
	_, _, _ = g.Scan(cat(pong, pong))
	now += 5e6 // with the half frame kept: a third frame
	if _, _, err := g.Scan(pong); err != nil {
		t.Fatalf("after 30ms: %v", err)
	}
	// A long pause refills at most the burst.
	now += 3600e9
	for i := 0; i < 10; i++ {
		if _, _, err := g.Scan(pong); err != nil {
			t.Fatalf("after an hour, frame %d: %v", i, err)
		}
	}
	if _, _, err := g.Scan(pong); err != ErrFrameRate {
		t.Fatalf("after an hour, frame 11: %v", err)
	}
	// No rate: no cap.
	g.Reset(limits(1024), false)
	for i := 0; i < 100000; i++ {
		if _, _, err := g.Scan(pong); err != nil {
			t.Fatal(err)
		}
	}
}

func TestViolationCodes(t *testing.T) {
	if ErrInvalidUTF8.Code != 1007 || ErrFrameRate.Code != 1008 {
		t.Errorf("utf-8 %d, frame rate %d", ErrInvalidUTF8.Code, ErrFrameRate.Code)
	}
	for _, v := range []*Violation{ErrUnmasked, ErrReservedBits, ErrReservedOpcode, ErrControlFragmented,
		ErrControlTooBig, ErrBadLength, ErrNoMessage, ErrInterleaved} {
		if v.Code != 1002 {
			t.Errorf("%v: code %d, want 1002", v, v.Code)
		}
	}
	if ErrTooBig.Code != 1009 {
		t.Errorf("too big: code %d", ErrTooBig.Code)
	}
}

// BenchmarkScan measures the guard over what a poller read typically holds:
// a 4 KiB buffer of small masked text frames, and the same buffer as the
// middle of one large frame (payload skipped).
func BenchmarkScan(b *testing.B) {
	msg := frame(fin|0x1, []byte(`{"type":"ping","id":12345}`), false)
	var small []byte
	for len(small)+len(msg) <= 4096 {
		small = append(small, msg...)
	}
	large := frame(fin|0x2, make([]byte, 1<<20), false)
	b.Run("small-frames", func(b *testing.B) {
		var g Guard
		g.Reset(&Limits{MaxMessage: 1 << 20, FrameRate: 800, FrameBurst: 1 << 30}, false)
		b.SetBytes(int64(len(small)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, _, err := g.Scan(small); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(len(small)/len(msg))), "ns/frame")
	})
	// A fragmented text message: its payload is unmasked and checked.
	unit := `{"type":"pub","data":"é€"}`
	text := []byte(strings.Repeat(unit, 4000/len(unit)))
	fragmented := cat(frame(0x1, text[:len(text)/2], false), frame(fin, text[len(text)/2:], false))
	b.Run("fragmented-text", func(b *testing.B) {
		var g Guard
		g.Reset(limits(1<<20), false)
		b.SetBytes(int64(len(fragmented)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, _, err := g.Scan(fragmented); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("large-payload", func(b *testing.B) {
		var g Guard
		g.Reset(limits(1<<30), false)
		b.SetBytes(4096)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			p := large
			for len(p) > 0 {
				k := min(4096, len(p))
				if _, _, err := g.Scan(p[:k]); err != nil {
					b.Fatal(err)
				}
				p = p[k:]
			}
		}
		b.SetBytes(int64(len(large)))
	})
}
