package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newTestShard returns a shard on a loopback listener that nothing dials;
// tests hand it connections made with socketpair.
func newTestShard(t *testing.T) *shard {
	t.Helper()
	srv := &server{clock: newClock(100*time.Millisecond, 10*time.Millisecond)}
	sa, err := resolve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnfd, _, err := listen(sa)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := newShard(srv, lnfd)
	if err != nil {
		t.Fatal(err)
	}
	srv.shards = []*shard{sh}
	return sh
}

// pair gives sh a new connection and returns it with the client's end.
func pair(t *testing.T, sh *shard) (*conn, *bufio.Reader, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.EpollCtl(sh.epfd, unix.EPOLL_CTL_ADD, fds[0], &unix.EpollEvent{Events: connEvents, Fd: int32(fds[0])}); err != nil {
		t.Fatal(err)
	}
	for fds[0] >= len(sh.conns) {
		sh.conns = append(sh.conns, make([]*conn, 64)...)
	}
	c := &conn{fd: fds[0]}
	sh.conns[fds[0]] = c
	f := os.NewFile(uintptr(fds[1]), "client")
	t.Cleanup(func() { _ = f.Close() })
	_ = f.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(f), f
}

// clientFrame is a masked client frame.
func clientFrame(op byte, fin bool, p string) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch {
	case len(p) < 126:
		b = append(b, 0x80|byte(len(p)))
	default:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(len(p)))
	}
	mask := []byte{1, 2, 3, 4}
	b = append(b, mask...)
	for i := range len(p) {
		b = append(b, p[i]^mask[i&3])
	}
	return b
}

// readHTTP reads an HTTP response head.
func readHTTP(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var resp strings.Builder
	for !strings.HasSuffix(resp.String(), "\r\n\r\n") {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read HTTP answer: %v", err)
		}
		resp.WriteString(line)
	}
	return resp.String()
}

// readFrame reads one server frame.
func readFrame(t *testing.T, r *bufio.Reader) (byte, string) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		_, _ = io.ReadFull(r, x[:])
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		_, _ = io.ReadFull(r, x[:])
		n = binary.BigEndian.Uint64(x[:])
	}
	if h[1]&0x80 != 0 {
		t.Fatal("server frame is masked")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return h[0] & 0x0f, string(p)
}

const upgradeReq = "GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

func TestHandshakeAndFrames(t *testing.T) {
	sh := newTestShard(t)
	defer sh.closeAll()
	c, r, _ := pair(t, sh)

	// The request arrives in pieces; the answer comes once it is whole.
	sh.input(c, []byte(upgradeReq[:7]))
	sh.input(c, []byte(upgradeReq[7:60]))
	if c.upgraded {
		t.Fatal("upgraded on half a request")
	}
	sh.input(c, []byte(upgradeReq[60:]))
	// The accept value from RFC 6455's own example.
	if resp := readHTTP(t, r); !strings.HasPrefix(resp, "HTTP/1.1 101 ") || !strings.Contains(resp, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") {
		t.Fatalf("handshake answer:\n%s", resp)
	}
	if op, p := readFrame(t, r); op != opText || p != `{"type":"welcome","id":"c1","interval_ms":100,"text":"Welcome to the server!"}` {
		t.Fatalf("welcome: %d %s", op, p)
	}

	// A ping message split inside its header, then one in two fragments.
	f := clientFrame(opText, true, `{"type":"ping","id":7}`)
	sh.input(c, f[:1])
	sh.input(c, f[1:5])
	sh.input(c, f[5:])
	if op, p := readFrame(t, r); op != opText || p != `{"type":"pong","id":7}` {
		t.Fatalf("pong: %d %s", op, p)
	}
	long := `{"type":"ping","id":"` + strings.Repeat("z", 300) + `"}`
	sh.input(c, append(clientFrame(opText, false, long[:100]), clientFrame(opCont, true, long[100:])...))
	if op, p := readFrame(t, r); op != opText || p != `{"type":"pong","id":"`+strings.Repeat("z", 300)+`"}` {
		t.Fatalf("pong to a fragmented ping: %d %.40s", op, p)
	}

	// Control frames: ping is answered with its payload, close is echoed.
	sh.input(c, clientFrame(opPing, true, "hi"))
	if op, p := readFrame(t, r); op != opPong || p != "hi" {
		t.Fatalf("pong frame: %d %q", op, p)
	}
	sh.input(c, clientFrame(opClose, true, "\x03\xe8bye"))
	if op, p := readFrame(t, r); op != opClose || p != "\x03\xe8" {
		t.Fatalf("close answer: %d %q", op, p)
	}
	if c.fd != -1 || sh.count.Load() != 0 {
		t.Fatal("connection still open after close")
	}

	// An unmasked frame is a protocol error.
	c, r, _ = pair(t, sh)
	sh.input(c, []byte(upgradeReq))
	sh.input(c, []byte{0x81, 0x01, 'x'})
	readHTTP(t, r)
	for {
		if op, p := readFrame(t, r); op == opClose {
			if binary.BigEndian.Uint16([]byte(p)) != 1002 {
				t.Fatalf("close code %q, want 1002", p)
			}
			break
		}
	}

	// Anything but GET /ws is a 404.
	c, r, _ = pair(t, sh)
	sh.input(c, []byte(strings.Replace(upgradeReq, "/ws?x=1", "/other", 1)))
	if line, _ := r.ReadString('\n'); line != "HTTP/1.1 404 Not Found\r\n" || c.fd != -1 {
		t.Fatalf("answer to /other: %q", line)
	}
}

// TestSlowClientBacklog fills a client's socket so that frames queue in
// c.out, then reads it all back in order.
func TestSlowClientBacklog(t *testing.T) {
	sh := newTestShard(t)
	c, r, _ := pair(t, sh)
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	sh.input(c, []byte(upgradeReq))

	// Ten broadcasts, run here before the loop starts so that c.out can be
	// looked at: far more than the socket takes.
	const n, size = 10, 50_000
	counts := make(chan int, n)
	for i := range n {
		p := strings.Repeat(string(rune('a'+i)), size)
		sh.post(command{frame: appendFrame(nil, opText, []byte(p)), done: counts})
	}
	if sh.commands() {
		t.Fatal("stopped")
	}
	for i := range n {
		if got := <-counts; got != 1 {
			t.Fatalf("broadcast %d went to %d clients", i, got)
		}
	}
	if len(c.out) < size {
		t.Fatalf("only %d bytes queued: the test did not fill the socket", len(c.out))
	}
	done := make(chan error, 1)
	go func() { done <- sh.loop() }()
	readHTTP(t, r)
	_, _ = readFrame(t, r) // welcome
	next, seq := 0, 0
	for next < n {
		op, p := readFrame(t, r)
		switch {
		case op == opText && strings.HasPrefix(p, `{"type":"tick","seq":`):
			seq++
			if !strings.HasPrefix(p, `{"type":"tick","seq":`+strconv.Itoa(seq)+`,"due":`) {
				t.Fatalf("tick %d: %s", seq, p)
			}
		case op == opText && len(p) == size && p == strings.Repeat(string(rune('a'+next)), size):
			next++
		default:
			t.Fatalf("frame %d: op %d, %d bytes %.20q", next, op, len(p), p)
		}
	}
	sh.post(command{stop: true})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
