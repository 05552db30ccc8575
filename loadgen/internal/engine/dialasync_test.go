package engine

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// paths: every upgrade test runs on the fast dial without a source, on
// the raw dial bound to a source and on the standard-library dial.
var paths = []struct {
	name string
	src  net.IP
	std  bool
}{{"async", nil, false}, {"raw-source", net.IPv4(127, 0, 0, 1), false}, {"std", net.IPv4(127, 0, 0, 1), true}}

// scriptServer serves each connection with serve, after reading its
// request; accept is the Sec-WebSocket-Accept for the request's key.
func scriptServer(t *testing.T, serve func(c net.Conn, accept string)) string {
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
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
				serve(c, base64.StdEncoding.EncodeToString(sum[:]))
			}()
		}
	}()
	return ln.Addr().String()
}

// newEngine starts an engine with one poller, and makes sure that poller
// runs before the test goes on: nbio v1.6.8's poller clears its shutdown
// flag when its goroutine starts, so an engine stopped before that (a
// test whose dials all fail before reaching the poller, on the sync path)
// spins in epoll_wait forever and Stop never returns. A dial that hangs
// up after the connect needs the poller.
func newEngine(t *testing.T, h Handler, timeout time.Duration, std bool) *Engine {
	t.Helper()
	e, err := New(Config{Handler: h, DialTimeout: timeout, Pollers: 1})
	if err != nil {
		t.Fatal(err)
	}
	warmUp(t, e)
	e.cfg.StdDial = std // after the warm-up, which must reach the poller; nothing else runs yet
	return e
}

// warmUp registers e.Stop for the end of the test and makes e's poller
// run once, with a dial the server hangs up on (see newEngine).
func warmUp(t *testing.T, e *Engine) {
	t.Helper()
	t.Cleanup(e.Stop)
	addr := scriptServer(t, func(net.Conn, string) {})
	if _, _, err := e.Dial(Target{Addr: addr}, 0); Classify(err) != ClassReset {
		t.Fatalf("warm-up dial: %v", err)
	}
}

// A 101 that arrives in two pieces, the second with the first frame: the
// dial succeeds and the frame reaches OnMessage before Dial returns.
func TestUpgradeInTwoPieces(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			addr := scriptServer(t, func(c net.Conn, accept string) {
				resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
				_, _ = io.WriteString(c, resp[:40])
				time.Sleep(20 * time.Millisecond) // two reads on the client
				_, _ = c.Write(append([]byte(resp[40:]), 0x81, 2, 'h', 'i'))
				_, _ = c.Read(make([]byte, 64)) // until the client hangs up
			})
			h := &rec{}
			e := newEngine(t, h, 5*time.Second, p.std)
			c, took, err := e.Dial(Target{Addr: addr, Source: p.src}, 7)
			if err != nil {
				t.Fatal(err)
			}
			if c.Slot != 7 || took <= 0 || took > 5*time.Second {
				t.Fatalf("slot %d, took %v", c.Slot, took)
			}
			if len(h.msgs) != 1 || h.msgs[0] != "hi" {
				t.Fatalf("messages at Dial's return: %q, want [hi]", h.msgs)
			}
			if e.Live() != 1 || e.LastUpgrade().IsZero() {
				t.Fatalf("live %d, last upgrade %v", e.Live(), e.LastUpgrade())
			}
			c.Abort()
		})
	}
}

// Bad answers are classified as before: a wrong accept key and a 404 are
// bad_handshake, a 503 is rejected with its Retry-After, a hang-up before
// the answer is reset, a refused connect refused.
func TestUpgradeErrors(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			e := newEngine(t, nopHandler{}, 5*time.Second, p.std)
			for _, c := range []struct {
				name, resp, class string
			}{
				{"wrong key", "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", ClassBadHandshake},
				{"404", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", ClassBadHandshake},
				{"503", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\n\r\n", ClassRejected},
				{"hang-up", "", ClassReset},
				{"huge head", "HTTP/1.1 101 Switching Protocols\r\nX: " + strings.Repeat("x", 5000) + "\r\n\r\n", ClassBadHandshake},
			} {
				addr := scriptServer(t, func(conn net.Conn, _ string) { _, _ = io.WriteString(conn, c.resp) })
				_, _, err := e.Dial(Target{Addr: addr, Source: p.src}, 0)
				if Classify(err) != c.class {
					t.Errorf("%s: err %v, class %q, want %q", c.name, err, Classify(err), c.class)
				}
				var rej *RejectedError
				if c.class == ClassRejected && (!errors.As(err, &rej) || rej.RetryAfter != 3*time.Second) {
					t.Errorf("%s: err %v, want a rejection with retry after 3s", c.name, err)
				}
			}
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			_ = ln.Close()
			if _, _, err := e.Dial(Target{Addr: addr, Source: p.src}, 0); Classify(err) != ClassRefused {
				t.Errorf("closed port: err %v, class %q, want refused", err, Classify(err))
			}
			if n := e.Live(); n != 0 {
				t.Errorf("live %d after failed dials", n)
			}
		})
	}
}

// An upgrade the server never answers times out after DialTimeout, and
// the socket is then closed (the server reads the end of the stream).
func TestUpgradeTimeout(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			eof := make(chan error, 1)
			addr := scriptServer(t, func(c net.Conn, _ string) {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err := c.Read(make([]byte, 64))
				eof <- err
			})
			e := newEngine(t, nopHandler{}, 200*time.Millisecond, p.std)
			start := time.Now()
			_, _, err := e.Dial(Target{Addr: addr, Source: p.src}, 0)
			if Classify(err) != ClassTimeout {
				t.Fatalf("err %v, class %q, want timeout", err, Classify(err))
			}
			if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
				t.Fatalf("timed out after %v, want ~200ms", d)
			}
			if err := <-eof; err != io.EOF {
				t.Fatalf("server read %v after the timeout, want EOF", err)
			}
		})
	}
}

// A connect the server's full backlog leaves unanswered times out too.
func TestConnectTimeout(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // never accepted: the queue fills
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	e := newEngine(t, nopHandler{}, 200*time.Millisecond, false)
	timeouts := 0
	for range 4 { // the first one or two fill the accept queue
		if _, _, err := e.Dial(Target{Addr: addr}, 0); Classify(err) == ClassTimeout {
			timeouts++
		} else if err == nil || Classify(err) != ClassTimeout && Classify(err) != ClassReset {
			t.Fatalf("err %v, class %q", err, Classify(err))
		}
	}
	if timeouts == 0 {
		t.Fatal("no dial timed out")
	}
}

// The keys are 16 random bytes in base64, different every time.
func TestNewKeyUnique(t *testing.T) {
	seen := make(map[[24]byte]bool, 100000)
	for range 100000 {
		var k [24]byte
		newKey(&k)
		raw, err := base64.StdEncoding.DecodeString(string(k[:]))
		if err != nil || len(raw) != 16 {
			t.Fatalf("key %q: %v, %d bytes", k, err, len(raw))
		}
		if seen[k] {
			t.Fatalf("key %q twice", k)
		}
		seen[k] = true
	}
}

// rawUpgrader is an upgrading server that allocates (almost) nothing per
// connection, for counting the client's allocations: blocking system
// calls on a goroutine of its own, a fixed buffer, no net/http. It keeps
// the sockets open until the test ends.
func rawUpgrader(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 1024); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = syscall.Shutdown(fd, syscall.SHUT_RDWR) // ends the accept
		<-done
		_ = syscall.Close(fd)
	})
	go func() {
		defer close(done)
		var open []int
		var buf [1024]byte
		for {
			c, _, err := syscall.Accept(fd)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				for _, c := range open {
					_ = syscall.Close(c)
				}
				return
			}
			open = append(open, c)
			n := 0
			for n < len(buf) {
				m, err := syscall.Read(c, buf[n:])
				if err == syscall.EINTR {
					continue
				}
				if err != nil || m <= 0 {
					break
				}
				n += m
				if headerEnd(buf[:n]) >= 0 {
					break
				}
			}
			const k = "Sec-WebSocket-Key: "
			i := strings.Index(string(buf[:n]), k) // the conversion does not escape
			if i < 0 {
				continue
			}
			var in [64]byte
			sum := sha1.Sum(append(append(in[:0], buf[i+len(k):i+len(k)+24]...), acceptGUID...))
			var resp [160]byte
			r := append(resp[:0], "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: "...)
			var acc [28]byte
			base64.StdEncoding.Encode(acc[:], sum[:])
			r = append(append(r, acc[:]...), "\r\n\r\n"...)
			for {
				if _, err := syscall.Write(c, r); err != syscall.EINTR {
					break
				}
			}
		}
	}()
	return (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
}

// A Dial without a source costs a handful of allocations: the Conn, the
// dial state, nbio's Conn (rawdial.go); no net.Dialer, no dup, no
// deadlines, no address parsing. nbio's DialAsyncTimeout made 20, the
// standard-library path 40 or more.
func TestDialAllocs(t *testing.T) {
	addr := rawUpgrader(t)
	e := newEngine(t, nopHandler{}, 5*time.Second, false)
	conns := make([]*Conn, 0, 256)
	allocs := testing.AllocsPerRun(200, func() {
		c, _, err := e.Dial(Target{Addr: addr}, 0)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	})
	t.Logf("%.1f allocations per Dial", allocs)
	if allocs > 10 {
		t.Fatalf("%.1f allocations per Dial, want <= 10 (nbio's DialAsyncTimeout: 20)", allocs)
	}
}
