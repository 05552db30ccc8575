package frameguard

import (
	"encoding/binary"
	"testing"
)

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
				g.Reset(1024, tc.deflate)
				_, err := g.Scan(tc.stream[:split])
				if err == nil {
					_, err = g.Scan(tc.stream[split:])
				}
				if err != tc.want {
					t.Fatalf("split at %d: got %v, want %v", split, err, tc.want)
				}
			}
			// Byte by byte.
			var g Guard
			g.Reset(1024, tc.deflate)
			var err error
			for i := 0; i < len(tc.stream) && err == nil; i++ {
				_, err = g.Scan(tc.stream[i : i+1])
			}
			if err != tc.want {
				t.Fatalf("byte by byte: got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestScanOffsetAndDrain(t *testing.T) {
	good := frame(fin|0x1, []byte("hello"), false)
	bad := frame(fin|0x1, []byte("world"), true)
	closeFrame := frame(fin|0x8, []byte{3, 232}, false)
	stream := cat(good, bad, frame(fin|0x9, nil, false), closeFrame)
	var g Guard
	g.Reset(1024, false)
	n, err := g.Scan(stream)
	if err != ErrUnmasked || n != len(good)+2 {
		t.Fatalf("got n=%d err=%v, want n=%d %v", n, err, len(good)+2, ErrUnmasked)
	}
	rest := stream[n:]
	closeAt := len(rest) - len(closeFrame)
	// The close frame's header ends the drain, and not a byte earlier.
	if g.Drain(rest[:closeAt+1]) {
		t.Fatal("drain ended before the close header was complete")
	}
	if !g.Drain(rest[closeAt+1:]) {
		t.Fatal("drain did not see the close frame")
	}

	g.Reset(1024, false)
	if _, err := g.Scan([]byte{fin | 0x2, 0x80 | 127, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}); err != ErrBadLength {
		t.Fatalf("got %v", err)
	}
	if !g.Drain([]byte{1}) {
		t.Fatal("a stream with unknown boundaries must end the drain")
	}
}

func TestViolationCodes(t *testing.T) {
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
		g.Reset(1<<20, false)
		b.SetBytes(int64(len(small)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := g.Scan(small); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(len(small)/len(msg))), "ns/frame")
	})
	b.Run("large-payload", func(b *testing.B) {
		var g Guard
		g.Reset(1<<30, false)
		b.SetBytes(4096)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			p := large
			for len(p) > 0 {
				k := min(4096, len(p))
				if _, err := g.Scan(p[:k]); err != nil {
					b.Fatal(err)
				}
				p = p[k:]
			}
		}
		b.SetBytes(int64(len(large)))
	})
}
