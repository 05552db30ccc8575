package engine

import (
	"errors"
	"net"
	"testing"

	"wspush/server/wire"
)

type nopHandler struct{}

func (nopHandler) OnMessage(*Conn, []byte, int64) {}
func (nopHandler) OnClose(*Conn, error)           {}

func TestBadHandshakeClassified(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1024)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
			_ = c.Close()
		}
	}()
	e, err := New(Config{Handler: nopHandler{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	_, _, err = e.Dial(Target{Addr: ln.Addr().String()}, 0)
	if !errors.Is(err, ErrBadHandshake) || Classify(err) != ClassBadHandshake {
		t.Fatalf("err = %v (class %q), want bad_handshake", err, Classify(err))
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
