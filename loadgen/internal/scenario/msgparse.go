package scenario

import "bytes"

// msgPrefix starts every msg frame, in the one form wspush (wire.AppendMsg)
// and the benchmark peers write it.
var msgPrefix = []byte(`{"type":"msg","topic":"`)

// parseMsg reads the seq and ts of a msg frame in exactly that form,
//
//	{"type":"msg","topic":"T","seq":N,"ts":N,"data":…}
//
// with a topic free of escapes, without encoding/json and without
// allocating: a delivery costs wsload a prefix compare and two integers
// (at 1M deliveries per broadcast, two encoding/json decodes per message
// were seconds of the 2 shared cores). The data is not looked at. Anything
// else — another field order, spaces, escapes, a subscribed notice — gives
// ok false and goes through the general decoder.
func parseMsg(p []byte) (seq uint64, ts int64, ok bool) {
	rest, ok := bytes.CutPrefix(p, msgPrefix)
	if !ok {
		return 0, 0, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return 0, 0, false
	}
	if rest, ok = bytes.CutPrefix(rest[i+1:], []byte(`,"seq":`)); !ok {
		return 0, 0, false
	}
	if seq, rest, ok = digits(rest); !ok {
		return 0, 0, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"ts":`)); !ok {
		return 0, 0, false
	}
	neg := len(rest) > 0 && rest[0] == '-'
	if neg {
		rest = rest[1:]
	}
	u, rest, ok := digits(rest)
	if !ok || u > 1<<63-1 {
		return 0, 0, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"data":`)); !ok || len(rest) < 2 || rest[len(rest)-1] != '}' {
		return 0, 0, false
	}
	ts = int64(u)
	if neg {
		ts = -ts
	}
	return seq, ts, true
}

// digits reads an unsigned decimal of 1..19 digits (no overflow possible).
func digits(b []byte) (uint64, []byte, bool) {
	var n uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i == 19 {
			return 0, b, false
		}
		n = n*10 + uint64(b[i]-'0')
	}
	return n, b[i:], i > 0
}
