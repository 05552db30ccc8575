package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// startTB is startServer for any testing.TB (fuzz targets included).
func startTB(tb testing.TB, flags ...string) *testServer {
	tb.Helper()
	return startTBWith(tb, nil, flags...)
}

// startTBWith is startTB with a last word on the configuration.
func startTBWith(tb testing.TB, edit func(*Config), flags ...string) *testServer {
	tb.Helper()
	args := append([]string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, flags...)
	cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.ShutdownTimeout = 3 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	n, err := start(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.shutdown(cfg) })
	return &testServer{cfg: cfg, n: n, ws: "ws://" + n.gw.Addr().String() + "/ws", admin: "http://" + n.admin.Addr().String()}
}

// validServerClose reports whether a server may send code (RFC 6455 §7.4).
func validServerClose(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011, code >= 3000 && code < 5000:
		// 3000–4999 appear when the server echoes a client's close code.
		return true
	}
	return false
}

// exchange upgrades a raw connection, sends b, half-closes and reads what
// the server answers until it closes. It checks that every server frame is
// well formed, that a close frame carries a valid code and is the last
// frame, and that the server closes the socket.
func exchange(host string, b []byte) error {
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	tc := c.(*net.TCPConn)
	defer func() { _ = tc.SetLinger(0); tc.Close() }()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, upgradeRequest(host)); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	rc := &rawConn{c: c, r: bufio.NewReader(c)}
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("handshake: %v %v", resp, err)
	}
	if _, err := c.Write(b); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		return fmt.Errorf("write: %w", err)
	}
	_ = tc.CloseWrite()
	closed := false
	for {
		op, p, err := rc.readFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("server kept the socket open after the client's EOF")
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF || isReset(err) {
				return nil
			}
			return err
		}
		if closed {
			return fmt.Errorf("frame op %d after the close frame", op)
		}
		switch op {
		case wire.OpText, wire.OpPong, wire.OpPing:
		case wire.OpClose:
			closed = true
			if len(p) == 1 || len(p) >= 2 && !validServerClose(binary.BigEndian.Uint16(p)) {
				return fmt.Errorf("close frame % x", p)
			}
		default:
			return fmt.Errorf("server sent opcode %d", op)
		}
	}
}

func isReset(err error) bool {
	return err != nil && (bytes.Contains([]byte(err.Error()), []byte("connection reset")) ||
		bytes.Contains([]byte(err.Error()), []byte("broken pipe")))
}

// witness is a well-behaved client that must keep being served.
type witness struct {
	c        *websocket.Conn
	n        int
	lastTick time.Time
}

// check sends a ping and waits for its pong, noting ticks on the way.
func (w *witness) check(tick time.Duration) error {
	w.n++
	id := fmt.Sprint(w.n)
	if err := w.c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":`+id+`}`)); err != nil {
		return fmt.Errorf("witness: write: %w", err)
	}
	for {
		m, err := tryNext(w.c, 5*time.Second)
		if err != nil {
			return fmt.Errorf("witness: no pong: %w", err)
		}
		switch m.Type {
		case wire.TypeTick:
			w.lastTick = time.Now()
		case wire.TypePong:
			if string(m.ID) != id {
				return fmt.Errorf("witness: pong %s, want %s", m.ID, id)
			}
			if since := time.Since(w.lastTick); since > 20*tick {
				return fmt.Errorf("witness: no tick for %v", since)
			}
			return nil
		}
	}
}

// FuzzLiveConnection sends fuzzed bytes after a real handshake to a server
// running in-process, and checks that the server answers sanely, closes the
// connection when the client leaves, and keeps serving a well-behaved
// client (ticks and pongs) throughout.
func FuzzLiveConnection(f *testing.F) {
	ping := clientFrame(finBit|wire.OpText, pingMsg)
	seeds := [][]byte{
		ping,
		append(clientFrame(finBit|wire.OpPing, []byte("hi")), ping...),
		unmaskedFrame(finBit|wire.OpText, pingMsg),
		clientFrame(finBit|0x40|wire.OpText, pingMsg),
		clientFrame(finBit|0x3, nil),
		clientFrame(wire.OpPing, nil),
		clientFrame(finBit|wire.OpPing, make([]byte, 126)),
		append(clientFrame(wire.OpText, pingMsg[:4]), clientFrame(finBit|wire.OpCont, pingMsg[4:])...),
		clientFrame(finBit|wire.OpText, []byte("\xc3\x28")),
		clientFrame(finBit|wire.OpClose, closePayload(1000, "bye")),
		clientFrame(finBit|wire.OpClose, closePayload(1005, "")),
		clientFrame(finBit|wire.OpClose, []byte{3}),
		clientFrame(finBit|wire.OpBinary, make([]byte, 5000)),
		{0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4},
		{0x81},
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	const tick = 100 * time.Millisecond
	s := startTB(f, "-push-interval", tick.String(), "-max-message-bytes", "4096",
		"-max-msg-rate", "0", "-accept-rate", "0", "-max-conns-per-ip", "0") // the witness pings once per input
	wc, _, err := websocket.DefaultDialer.Dial(s.ws, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { wc.Close() })
	w := &witness{c: wc, lastTick: time.Now()}
	if err := w.check(tick); err != nil {
		f.Fatal(err)
	}
	host := hostOf(s)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := exchange(host, b); err != nil {
			t.Fatalf("bytes % x: %v", b, err)
		}
		if err := w.check(tick); err != nil {
			t.Fatalf("after bytes % x: %v", b, err)
		}
	})
}
