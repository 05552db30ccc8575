package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"wspush/server/wire"
)

// These tests speak RFC 6455 by hand on raw sockets, so that they can send
// what no client library would.

const testKey = "dGhlIHNhbXBsZSBub25jZQ==" // 16 bytes, RFC 6455 §1.3

// rawConn is a client socket after the handshake.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func hostOf(s *testServer) string { return s.n.gw.Addr().String() }

// rawHandshake dials s, sends req (a full HTTP request) and returns the
// response and the connection.
func rawHandshake(t *testing.T, s *testServer, req string) (*http.Response, *rawConn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostOf(s), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{c: c, r: bufio.NewReader(c)}
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		t.Fatalf("reading the handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, rc
}

func upgradeRequest(host string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n", host)
	fmt.Fprintf(&b, "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n", testKey)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// rawDial upgrades a raw connection and reads the welcome.
func rawDial(t *testing.T, s *testServer, extra ...string) *rawConn {
	t.Helper()
	resp, rc := rawHandshake(t, s, upgradeRequest(hostOf(s), extra...))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: HTTP %d", resp.StatusCode)
	}
	op, p := rc.read(t)
	if op != wire.OpText || !bytes.Contains(p, []byte(`"welcome"`)) {
		t.Fatalf("first frame: op %d %q, want the welcome", op, p)
	}
	return rc
}

// clientFrame encodes a masked client frame; b0 is FIN|RSV|opcode.
func clientFrame(b0 byte, payload []byte) []byte {
	f := unmaskedFrame(b0, payload)
	hl := len(f) - len(payload)
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	out := append(f[:hl:hl], key[:]...)
	out[1] |= 0x80
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

func unmaskedFrame(b0 byte, payload []byte) []byte {
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n <= 0xFFFF:
		out = append(out, 126, byte(n>>8), byte(n))
	default:
		out = append(out, 127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	return append(out, payload...)
}

func closePayload(code uint16, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

func (rc *rawConn) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if _, err := rc.c.Write(f); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

// readFrame reads one server frame: FIN must be set and the frame unmasked.
func (rc *rawConn) readFrame() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(rc.r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[0]&0x70 != 0 || h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("unexpected server frame header % x", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(rc.r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(rc.r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(rc.r, payload)
	return h[0] & 0x0F, payload, err
}

func (rc *rawConn) read(t *testing.T) (byte, []byte) {
	t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	op, p, err := rc.readFrame()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return op, p
}

// expectClose reads until the server's close frame and checks its code
// (noStatus: an empty close frame). It returns the reason.
func (rc *rawConn) expectClose(t *testing.T, code uint16) string {
	t.Helper()
	for {
		op, p := rc.read(t)
		if op != wire.OpClose {
			continue // a reply to what came before the violation
		}
		if code == noStatus {
			if len(p) != 0 {
				t.Fatalf("close payload %q, want none", p)
			}
			return ""
		}
		if len(p) < 2 {
			t.Fatalf("close frame without a code (%q), want %d", p, code)
		}
		if got := binary.BigEndian.Uint16(p); got != code {
			t.Fatalf("close code %d (%q), want %d", got, p[2:], code)
		}
		return string(p[2:])
	}
}

const noStatus = 0

// expectEOF checks that the server closes the socket within d.
func (rc *rawConn) expectEOF(t *testing.T, d time.Duration) {
	t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(d))
	op, p, err := rc.readFrame()
	if err == nil {
		t.Fatalf("frame after the close: op %d %q", op, p)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("socket still open %v after the close", d)
	}
	// EOF or reset: closed.
}

// finish answers the server's close and checks that the server then
// closes the socket at once.
func (rc *rawConn) finish(t *testing.T) {
	t.Helper()
	_, _ = rc.c.Write(clientFrame(finBit|wire.OpClose, nil))
	rc.expectEOF(t, 5*time.Second)
}

// quietServer is a server that sends nothing unasked.
func quietServer(t *testing.T, flags ...string) *testServer {
	return startServer(t, append([]string{"-push-interval", "0", "-ping-interval", "0", "-max-message-bytes", "1024"}, flags...)...)
}

const finBit = 0x80

var pingMsg = []byte(`{"type":"ping","id":7}`)

func deflateRaw(t *testing.T, p []byte) []byte {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(p)
	_ = w.Flush()
	out := buf.Bytes()
	return out[:len(out)-4]
}

func TestRFC6455ProtocolErrorsClose1002(t *testing.T) {
	s := quietServer(t)
	sc := quietServer(t, "-compression")
	offer := "Sec-WebSocket-Extensions: permessage-deflate"
	cases := []struct {
		name   string
		srv    *testServer
		offer  bool
		frames [][]byte
	}{
		{"unmasked text", s, false, [][]byte{unmaskedFrame(finBit|wire.OpText, pingMsg)}},
		{"unmasked close", s, false, [][]byte{unmaskedFrame(finBit|wire.OpClose, closePayload(1000, ""))}},
		{"rsv1 without compression", s, false, [][]byte{clientFrame(finBit|0x40|wire.OpText, pingMsg)}},
		{"rsv1 not negotiated", sc, false, [][]byte{clientFrame(finBit|0x40|wire.OpText, deflateRaw(t, pingMsg))}},
		{"rsv1 on a continuation", sc, true, [][]byte{clientFrame(0x40|wire.OpText, deflateRaw(t, pingMsg)), clientFrame(finBit|0x40|wire.OpCont, nil)}},
		{"rsv1 on a ping", sc, true, [][]byte{clientFrame(finBit|0x40|wire.OpPing, nil)}},
		{"rsv2", s, false, [][]byte{clientFrame(finBit|0x20|wire.OpText, pingMsg)}},
		{"rsv3", sc, true, [][]byte{clientFrame(finBit|0x10|wire.OpBinary, pingMsg)}},
		{"ping of 126 bytes", s, false, [][]byte{clientFrame(finBit|wire.OpPing, make([]byte, 126))}},
		{"close of 126 bytes", s, false, [][]byte{clientFrame(finBit|wire.OpClose, closePayload(1000, strings.Repeat("x", 124)))}},
		{"fragmented ping", s, false, [][]byte{clientFrame(wire.OpPing, nil), clientFrame(finBit|wire.OpCont, nil)}},
		{"continuation with no message", s, false, [][]byte{clientFrame(finBit|wire.OpCont, pingMsg)}},
		{"text inside a fragmented message", s, false, [][]byte{clientFrame(wire.OpText, pingMsg[:4]), clientFrame(finBit|wire.OpText, pingMsg)}},
		{"close with a 1-byte payload", s, false, [][]byte{clientFrame(finBit|wire.OpClose, []byte{3})}},
	}
	for op := byte(3); op <= 0xF; op++ {
		if op >= 8 && op <= 0xA {
			continue
		}
		cases = append(cases, struct {
			name   string
			srv    *testServer
			offer  bool
			frames [][]byte
		}{fmt.Sprintf("opcode %#x", op), s, false, [][]byte{clientFrame(finBit|op, []byte("x"))}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var extra []string
			if tc.offer {
				extra = append(extra, offer)
			}
			rc := rawDial(t, tc.srv, extra...)
			rc.send(t, tc.frames...)
			rc.expectClose(t, wire.CloseProtocolError)
			rc.finish(t)
		})
	}
	// What the guard lets through still works on the same servers.
	rc := rawDial(t, sc, offer)
	rc.send(t, clientFrame(finBit|0x40|wire.OpText, deflateRaw(t, pingMsg)))
	if op, p := rc.read(t); op != wire.OpText || !bytes.Contains(p, []byte(`"pong"`)) {
		t.Fatalf("compressed ping: got op %d %q, want a pong", op, p)
	}
}

func TestRFC6455InvalidUTF8Close1007(t *testing.T) {
	s := quietServer(t)
	bad := []byte("{\"type\":\"ping\",\"id\":\"\xc3\x28\"}")
	cases := map[string][][]byte{
		"text":            {clientFrame(finBit|wire.OpText, bad)},
		"fragmented text": {clientFrame(wire.OpText, bad[:10]), clientFrame(finBit|wire.OpCont, bad[10:])},
		"close reason":    {clientFrame(finBit|wire.OpClose, closePayload(1000, "bye \xff"))},
	}
	for name, frames := range cases {
		t.Run(name, func(t *testing.T) {
			rc := rawDial(t, s)
			rc.send(t, frames...)
			rc.expectClose(t, wire.CloseInvalidPayload)
			rc.finish(t)
		})
	}
	// A character split between fragments is valid UTF-8 once reassembled,
	// and binary messages are not checked.
	rc := rawDial(t, s)
	good := []byte(`{"type":"ping","id":"é€"}`)
	cut := bytes.IndexByte(good, 0xE2) + 1
	rc.send(t, clientFrame(wire.OpText, good[:cut]), clientFrame(finBit|wire.OpCont, good[cut:]))
	if op, p := rc.read(t); op != wire.OpText || !bytes.Contains(p, []byte(`"pong"`)) {
		t.Fatalf("got op %d %q, want a pong", op, p)
	}
	rc.send(t, clientFrame(finBit|wire.OpBinary, []byte{0xff, 0xfe}))
	if op, p := rc.read(t); op != wire.OpText || !bytes.Contains(p, []byte(`"error"`)) {
		t.Fatalf("binary: got op %d %q, want an error frame", op, p)
	}
}

func TestRFC6455FragmentsReassembledWithinTheCap(t *testing.T) {
	s := quietServer(t) // -max-message-bytes 1024
	rc := rawDial(t, s)
	rc.send(t, clientFrame(wire.OpText, pingMsg[:3]), clientFrame(finBit|wire.OpPing, []byte("hb")),
		clientFrame(wire.OpCont, nil), clientFrame(wire.OpCont, pingMsg[3:10]), clientFrame(finBit|wire.OpCont, pingMsg[10:]))
	if op, p := rc.read(t); op != wire.OpPong || string(p) != "hb" {
		t.Fatalf("got op %d %q, want the pong for the ping between fragments", op, p)
	}
	if op, p := rc.read(t); op != wire.OpText || !bytes.Contains(p, []byte(`"pong","id":7`)) {
		t.Fatalf("got op %d %q, want the JSON pong for the reassembled ping", op, p)
	}
	// 1024 bytes in fragments is at the cap: answered (as a bad message).
	msg := append(append([]byte(`{"type":"ping","id":8,"pad":"`), bytes.Repeat([]byte("x"), 1024-31)...), '"', '}')
	rc.send(t, clientFrame(wire.OpText, msg[:500]), clientFrame(finBit|wire.OpCont, msg[500:]))
	if op, p := rc.read(t); op != wire.OpText || !bytes.Contains(p, []byte(`"id":8`)) {
		t.Fatalf("got op %d %q, want an answer to the message at the cap", op, p)
	}

	t.Run("fragments over the cap", func(t *testing.T) {
		rc := rawDial(t, s)
		rc.send(t, clientFrame(wire.OpBinary, make([]byte, 600)), clientFrame(wire.OpCont, make([]byte, 400)),
			clientFrame(finBit|wire.OpCont, make([]byte, 25)))
		rc.expectClose(t, wire.CloseTooBig)
		rc.finish(t)
	})
	t.Run("one frame over the cap", func(t *testing.T) {
		rc := rawDial(t, s)
		rc.send(t, clientFrame(finBit|wire.OpText, make([]byte, 1025)))
		rc.expectClose(t, wire.CloseTooBig)
		rc.finish(t)
	})
}

func TestRFC6455CloseHandshake(t *testing.T) {
	s := quietServer(t)
	for _, code := range []uint16{1000, 1001, 1003, 1011, 3000, 4001, 4999} {
		t.Run(fmt.Sprint("echo ", code), func(t *testing.T) {
			rc := rawDial(t, s)
			rc.send(t, clientFrame(finBit|wire.OpClose, closePayload(code, "bye")))
			rc.expectClose(t, code)
			rc.expectEOF(t, 5*time.Second)
		})
	}
	t.Run("no status", func(t *testing.T) {
		rc := rawDial(t, s)
		rc.send(t, clientFrame(finBit|wire.OpClose, nil))
		rc.expectClose(t, noStatus)
		rc.expectEOF(t, 5*time.Second)
	})
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		t.Run(fmt.Sprint("invalid ", code), func(t *testing.T) {
			rc := rawDial(t, s)
			rc.send(t, clientFrame(finBit|wire.OpClose, closePayload(code, "")))
			rc.expectClose(t, wire.CloseProtocolError)
			rc.expectEOF(t, 5*time.Second)
		})
	}
}

// After a protocol error the server fails the connection (RFC 6455
// §7.1.7): it sends its close frame and closes the TCP connection at once,
// without waiting for the client's close.
func TestRFC6455ServerClosesTheSocketAfterAProtocolError(t *testing.T) {
	// With a close grace far longer than the wait, only the server's own
	// close can end the connection in time.
	long := startTBWith(t, func(c *Config) { c.Hub.CloseGrace = time.Minute },
		"-push-interval", "0", "-ping-interval", "0")
	rc := rawDial(t, long)
	rc.send(t, unmaskedFrame(finBit|wire.OpText, pingMsg))
	rc.expectClose(t, wire.CloseProtocolError)
	rc.expectEOF(t, 2*time.Second)

	s := quietServer(t) // the default close grace, 1s
	rc = rawDial(t, s)
	rc.send(t, clientFrame(finBit|0x20|wire.OpText, pingMsg))
	rc.expectClose(t, wire.CloseProtocolError)
	rc.expectEOF(t, 10*time.Second)
}

func TestRFC6455BadHandshakes(t *testing.T) {
	s := quietServer(t)
	host := hostOf(s)
	req := func(method, version string, headers ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s /ws %s\r\nHost: %s\r\n", method, version, host)
		for _, h := range headers {
			b.WriteString(h + "\r\n")
		}
		return b.String() + "\r\n"
	}
	up := []string{"Connection: keep-alive, Upgrade", "Upgrade: websocket"}
	key := "Sec-WebSocket-Key: " + testKey
	v13 := "Sec-WebSocket-Version: 13"
	cases := []struct {
		name   string
		req    string
		status int
		header [2]string
	}{
		{"good", req("GET", "HTTP/1.1", append(up, v13, key)...), 101, [2]string{}},
		{"missing key", req("GET", "HTTP/1.1", append(up, v13)...), 400, [2]string{}},
		{"short key", req("GET", "HTTP/1.1", append(up, v13, "Sec-WebSocket-Key: c2hvcnQ=")...), 400, [2]string{}},
		{"key not base64", req("GET", "HTTP/1.1", append(up, v13, "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==")...), 400, [2]string{}},
		{"wrong version", req("GET", "HTTP/1.1", append(up, "Sec-WebSocket-Version: 8", key)...), 426, [2]string{"Sec-WebSocket-Version", "13"}},
		{"missing version", req("GET", "HTTP/1.1", append(up, key)...), 400, [2]string{"Sec-WebSocket-Version", "13"}},
		{"POST", req("POST", "HTTP/1.1", append(up, v13, key, "Content-Length: 0")...), 405, [2]string{"Allow", "GET"}},
		{"no Upgrade header", req("GET", "HTTP/1.1", "Connection: Upgrade", v13, key), 400, [2]string{}},
		{"HTTP/1.0", req("GET", "HTTP/1.0", append(up, v13, key)...), 400, [2]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := rawHandshake(t, s, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.header[0] != "" && resp.Header.Get(tc.header[0]) != tc.header[1] {
				t.Fatalf("%s: %q, want %q", tc.header[0], resp.Header.Get(tc.header[0]), tc.header[1])
			}
		})
	}
}
