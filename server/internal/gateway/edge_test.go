package gateway

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMaxConnsFromTheFileLimit(t *testing.T) {
	for _, c := range []struct{ nofile, reserve, maxConns, sockets int }{
		{20_000, 312, 19_688, 19_766},
		{1 << 20, 16_384, 1<<20 - 16_384, 1<<20 - 16_384 + 4_096},
		{1024, 64, 960, 976},
		{128, 64, 64, 80},
		{16, 64, 1, 1},
		{1 << 40, 1 << 21 / 64, 1<<21 - 1<<21/64, 1<<21 - 1<<21/64 + 1<<21/256}, // "unlimited"
	} {
		if r := FileReserve(min(c.nofile, maxNofile)); r != c.reserve {
			t.Errorf("FileReserve(%d) = %d, want %d", c.nofile, r, c.reserve)
		}
		if m := MaxConnsFor(c.nofile); m != c.maxConns {
			t.Errorf("MaxConnsFor(%d) = %d, want %d", c.nofile, m, c.maxConns)
		}
		if s := socketsCap(MaxConnsFor(c.nofile), c.nofile); s != c.sockets {
			t.Errorf("socketsCap(default, %d) = %d, want %d", c.nofile, s, c.sockets)
		}
	}
	// An explicit cap above the file limit still leaves half the reserve.
	if s := socketsCap(50_000, 20_000); s != 20_000-156 {
		t.Errorf("socketsCap(50000, 20000) = %d, want %d", s, 20_000-156)
	}
	if d, l := DefaultMaxConns(), FileLimit(); d != MaxConnsFor(l) || d >= l {
		t.Errorf("DefaultMaxConns() = %d with a file limit of %d", d, l)
	}
}

// scanAll feeds data to a fresh scanner in pieces cut at cuts and returns
// the header end it reports, as an offset into data.
func scanAll(data []byte, cuts []int) int {
	var ec edgeConn
	off := 0
	for _, cut := range append(cuts, len(data)) {
		if cut < off || cut > len(data) {
			continue
		}
		if end := ec.scan(data[off:cut]); end >= 0 {
			if ec.n != off+end {
				return -2 // the count disagrees with the offset
			}
			return off + end
		}
		off = cut
	}
	return -1
}

func want(data []byte) int {
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return -1
}

func TestScanFindsTheHeaderEnd(t *testing.T) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\r\n\r\nrest",
		"\r\r\n\r\n",
		"\r\n\r\r\n\r\n",
		"a\n\n\r\n\n\r\n\r\n",
		"no end\r\n\r",
		"",
	} {
		data := []byte(s)
		for cut := 0; cut <= len(data); cut++ {
			if got, w := scanAll(data, []int{cut}), want(data); got != w {
				t.Errorf("%q cut at %d: end %d, want %d", s, cut, got, w)
			}
		}
	}
}

func FuzzEdgeScan(f *testing.F) {
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n\x81\x85"), 3, 20)
	f.Add([]byte("\r\r\n\r\r\n\r\n"), 1, 2)
	f.Add([]byte("GET / HTTP/1.1\r\nX: y\r\n\n\r\n"), 5, 100)
	f.Fuzz(func(t *testing.T, data []byte, a, b int) {
		cuts := []int{a, b}
		if a < 0 || b < 0 {
			cuts = nil
		}
		if got, w := scanAll(data, cuts), want(data); got != w {
			t.Fatalf("%q cut at %v: end %d, want %d", data, cuts, got, w)
		}
	})
}

// errListener fails Accept with EMFILE a number of times, then accepts.
type errListener struct {
	net.Listener
	fails int
	conn  net.Conn
}

func (l *errListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.conn, nil
}

type lineCounter struct {
	mu    sync.Mutex
	lines []string
}

func (w *lineCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.lines = append(w.lines, string(p))
	w.mu.Unlock()
	return len(p), nil
}

func TestAcceptErrorsRetriedAndLoggedAtABoundedRate(t *testing.T) {
	var out lineCounter
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&out, nil)))
	defer slog.SetDefault(old)

	c := &fakeConn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
	l := newListener(&errListener{fails: 6, conn: c})
	start := time.Now()
	got, err := l.Accept()
	if err != nil || got != c {
		t.Fatalf("Accept: %v, %v; want the connection after the errors", got, err)
	}
	// 5+10+20+40+80+160 ms of backoff.
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("6 failures took %v: no backoff", took)
	}
	if len(out.lines) != 1 || !strings.Contains(out.lines[0], "too many open files") {
		t.Fatalf("logged %q, want one line", out.lines)
	}
}

func TestAcceptOverTheCapIsRefused(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newListener(inner)
	l.maxOpen = 1
	defer l.Close()
	refused := 0
	l.refused = func() { refused++ }
	d1, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d1.Close()
	c1, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	// The second socket is answered and closed inside Accept, which then
	// returns the third once the first has closed.
	d2, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	_ = d2.SetReadDeadline(time.Now().Add(3 * time.Second))
	var buf bytes.Buffer
	_, err = buf.ReadFrom(d2)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || !strings.HasPrefix(buf.String(), "HTTP/1.1 503 ") || !strings.Contains(buf.String(), "Retry-After: 1") {
		t.Fatalf("over the cap: %q, %v; want a 503 and a close", buf.String(), err)
	}
	l.closedOne()
	d3, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	select {
	case c3 := <-accepted:
		if c3 == nil {
			t.Fatal("Accept failed")
		}
		c3.Close()
	case <-time.After(3 * time.Second):
		t.Fatal("no accept after a socket closed")
	}
	if refused != 1 {
		t.Fatalf("refused counted %d times, want 1", refused)
	}
}
