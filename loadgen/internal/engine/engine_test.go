package engine

import (
	"errors"
	"net"
	"testing"
	"time"

	"wspush/server/wire"
)

type nopHandler struct{}

func (nopHandler) OnMessage(*Conn, []byte, int64) {}
func (nopHandler) OnClose(*Conn, error)           {}

// rawServer answers every connection's first read with resp and hangs up.
func rawServer(t *testing.T, resp string) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1024)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte(resp))
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

func dialOnce(t *testing.T, addr string) error {
	t.Helper()
	e, err := New(Config{Handler: nopHandler{}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	c, _, err := e.Dial(Target{Addr: addr}, 0)
	if err == nil {
		c.Close()
		t.Fatal("dial succeeded against a server that never upgrades")
	}
	return err
}

func TestBadHandshakeClassified(t *testing.T) {
	err := dialOnce(t, rawServer(t, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
	var rej *RejectedError
	if !errors.Is(err, ErrBadHandshake) || Classify(err) != ClassBadHandshake || errors.As(err, &rej) {
		t.Fatalf("err = %v (class %q), want bad_handshake", err, Classify(err))
	}
}

// A 503 with Retry-After is a *RejectedError, still a bad handshake for
// errors.Is, and its own class.
func TestRejectedRetryAfter(t *testing.T) {
	err := dialOnce(t, rawServer(t, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n\r\n"))
	var rej *RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("err = %v (%T), want *RejectedError", err, err)
	}
	if rej.Status != 503 || rej.RetryAfter != 2*time.Second {
		t.Fatalf("rejected %+v, want status 503, retry after 2s", *rej)
	}
	if !errors.Is(err, ErrBadHandshake) {
		t.Fatal("a *RejectedError does not match ErrBadHandshake")
	}
	if c := Classify(err); c != "rejected" {
		t.Fatalf("class %q, want rejected", c)
	}
	// 429 without Retry-After
	err = dialOnce(t, rawServer(t, "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n"))
	if !errors.As(err, &rej) || rej.Status != 429 || rej.RetryAfter != 0 || Classify(err) != ClassRejected {
		t.Fatalf("429: err = %v, class %q", err, Classify(err))
	}
}

func TestParseRetryAfter(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"2", 2 * time.Second},
		{"0", 0},
		{"", 0},
		{"60", 60 * time.Second},
		{"61", MaxRetryAfter},
		{"99999999999999999999999999", MaxRetryAfter},
		{"120x", 0},
		{"-1", 0},
		{"1.5", 0},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0},
	} {
		if got := parseRetryAfter([]byte(c.in)); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	// header name case and whitespace, and other headers first
	err := checkResponse([]byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nretry-AFTER:  10 \r\n"), nil)
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Status != 429 || rej.RetryAfter != 10*time.Second {
		t.Fatalf("err = %v", err)
	}
}

func TestCheckResponse(t *testing.T) {
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==") // RFC 6455's example
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	if err := checkResponse([]byte(ok), key); err != nil {
		t.Fatalf("valid response refused: %v", err)
	}
	for _, bad := range []string{
		"HTTP/1.1 200 OK\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n",
		"HTTP/1.1 101 Switching Protocols\r\n",
		"garbage",
	} {
		if err := checkResponse([]byte(bad), key); !errors.Is(err, ErrBadHandshake) {
			t.Errorf("%q: err = %v, want ErrBadHandshake", bad, err)
		}
	}
}

type rec struct{ msgs []string }

func (r *rec) OnMessage(_ *Conn, p []byte, _ int64) { r.msgs = append(r.msgs, string(p)) }
func (r *rec) OnClose(*Conn, error)                 {}

func TestFeedFragmentsAndPartials(t *testing.T) {
	// "hel" (text, not fin) + ping + "lo" (continuation, fin) + a 200-byte
	// frame with a 16-bit length, fed one byte at a time.
	var stream []byte
	stream = append(stream, 0x01, 3, 'h', 'e', 'l')
	stream = append(stream, 0x80|wire.OpPong, 0)
	stream = append(stream, 0x80, 2, 'l', 'o')
	big := make([]byte, 200)
	for i := range big {
		big[i] = 'x'
	}
	stream = append(stream, 0x81, 126, 0, 200)
	stream = append(stream, big...)
	h := &rec{}
	c := &Conn{}
	for i := range stream {
		if err := c.feed(stream[i:i+1], 0, h, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if len(h.msgs) != 2 || h.msgs[0] != "hello" || h.msgs[1] != string(big) {
		t.Fatalf("messages %q", h.msgs)
	}
	if c.rest != nil || c.frag != nil {
		t.Fatal("buffers not released")
	}
	if err := c.feed([]byte{0x81, 0x85, 0, 0, 0, 0, 'x'}, 0, h, 1<<20); !errors.Is(err, ErrProtocol) {
		t.Fatalf("masked server frame: err = %v", err)
	}
}
