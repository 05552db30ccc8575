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

// welcomePrefix starts every welcome, in the form wspush (wire.AppendWelcome)
// and the benchmark peers write it.
var welcomePrefix = []byte(`{"type":"welcome","id":"`)

// isWelcome recognises a welcome in exactly that form,
//
//	{"type":"welcome","id":"S","interval_ms":N[,"first_due":N],"text":"S"}
//
// with strings free of escapes and control characters and integers that
// fit an int64, without encoding/json and without allocating: every
// connection gets one, and decoding it was ~3 µs of wsload's CPU per
// connect. For what it accepts wire.ParseServer gives Type "welcome" too
// (FuzzIsWelcome); anything else gives false and goes through ParseServer.
func isWelcome(p []byte) bool {
	rest, ok := bytes.CutPrefix(p, welcomePrefix)
	if !ok {
		return false
	}
	if rest, ok = plainString(rest); !ok {
		return false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"interval_ms":`)); !ok {
		return false
	}
	if rest, ok = jsonInt(rest); !ok {
		return false
	}
	if r, ok := bytes.CutPrefix(rest, []byte(`,"first_due":`)); ok {
		if rest, ok = jsonInt(r); !ok {
			return false
		}
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"text":"`)); !ok {
		return false
	}
	rest, ok = plainString(rest)
	return ok && len(rest) == 1 && rest[0] == '}'
}

// plainString skips the rest of a JSON string (its opening quote already
// read) up to and including the closing quote; an escape or a control
// character gives false.
func plainString(b []byte) ([]byte, bool) {
	for i, c := range b {
		switch {
		case c == '"':
			return b[i+1:], true
		case c == '\\' || c < 0x20:
			return b, false
		}
	}
	return b, false
}

// jsonInt skips a JSON integer that fits an int64 (no leading zero).
func jsonInt(b []byte) ([]byte, bool) {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	u, rest, ok := digits(b)
	if !ok || u > 1<<63-1 || (b[0] == '0' && len(b)-len(rest) > 1) {
		return b, false
	}
	return rest, true
}
