package engine

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

// closeRec reports OnClose's error.
type closeRec struct{ closed chan error }

func (closeRec) OnMessage(*Conn, []byte, int64) {}
func (r closeRec) OnClose(_ *Conn, err error)   { r.closed <- err }

// upgradeServer upgrades one connection, writes after (with the 101) and
// hands the socket to serve.
func upgradeServer(t *testing.T, after []byte, serve func(net.Conn, *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
		if _, err := c.Write(append([]byte(resp), after...)); err != nil {
			return
		}
		serve(c, br)
	}()
	return ln.Addr().String()
}

func dialRec(t *testing.T, addr string) (*Conn, chan error) {
	t.Helper()
	h := closeRec{closed: make(chan error, 1)}
	e, err := New(Config{Handler: h, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	c, _, err := e.Dial(Target{Addr: addr}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c, h.closed
}

func waitClose(t *testing.T, closed chan error) error {
	t.Helper()
	select {
	case err := <-closed:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("OnClose not called within 5 s")
		return nil
	}
}

// A bad frame in the same read as the 101 ends the connection (the poller
// closes it) with a protocol error, though the server keeps it open.
func TestBadFrameWithThe101(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	addr := upgradeServer(t, []byte{0xF1, 0}, func(net.Conn, *bufio.Reader) { <-hold }) // reserved bits set
	_, closed := dialRec(t, addr)
	if err := waitClose(t, closed); !errors.Is(err, ErrProtocol) {
		t.Fatalf("OnClose err = %v, want a protocol error", err)
	}
}

// Abort ends a connection whose server ignores the close frame; a second
// Abort after the end touches nothing.
func TestAbortAnUnansweredClose(t *testing.T) {
	got := make(chan []byte, 1)
	addr := upgradeServer(t, nil, func(c net.Conn, br *bufio.Reader) {
		var b [8]byte
		n, _ := br.Read(b[:])
		got <- b[:n]
		_, _ = br.ReadByte() // until the client hangs up
	})
	c, closed := dialRec(t, addr)
	c.Close()
	if f := <-got; len(f) < 2 || f[0] != 0x88 {
		t.Fatalf("server read % x, want a close frame", f)
	}
	select {
	case err := <-closed:
		t.Fatalf("closed (%v) before the server answered", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.Abort()
	if err := waitClose(t, closed); !errors.Is(err, ErrClosedByClient) {
		t.Fatalf("OnClose err = %v, want ErrClosedByClient", err)
	}
	c.Abort()
}
