package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

func TestNoGoroutinePerConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 5,000 connections")
	}
	s := startServer(t, "-push-interval", "2s", "-max-conns-per-ip", "0") // 5,000 from 127.0.0.1
	// Let the server's own goroutines start, then count.
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()
	const n = 5000
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		c, _, err := d.Dial(s.ws, nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if m := next(t, c, 5*time.Second); m.Type != wire.TypeWelcome {
			t.Fatalf("connection %d: first frame %+v", i, m)
		}
	}
	eventually(t, 5*time.Second, "every client registered", func() bool { return s.n.hub.Len() == n })
	// nbio's executor may still be winding down handshake goroutines; they
	// exit once idle. The test clients run no goroutines of their own.
	var g int
	eventually(t, 10*time.Second, "goroutines back near the idle count", func() bool {
		g = runtime.NumGoroutine()
		return g <= base+20
	})
	t.Logf("%d connections: %d goroutines (idle server: %d)", n, g, base)
	// They are live: a client gets its tick.
	if m := nextOf(t, conns[n-1], wire.TypeTick, 5*time.Second); m.Seq != 1 {
		t.Fatalf("first tick %+v", m)
	}
}

func TestSlowConsumerDroppedOthersUnaffected(t *testing.T) {
	s := startServer(t, "-push-interval", "10ms", "-push-text", strings.Repeat("p", 16000), "-max-write-buffer", "32KiB", "-max-publish-bytes", "8KiB",
		"-ping-interval", "0", "-idle-timeout", "0")
	// One client that never reads, with a small receive buffer so that the
	// kernel's buffers fill quickly.
	slowDialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		return d.DialContext(ctx, network, addr)
	}}
	slow, _, err := slowDialer.Dial(s.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()

	const readers = 8
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	counts := make([]int, readers)
	stop := make(chan struct{})
	for i := 0; i < readers; i++ {
		c := dial(t, s.ws)
		wg.Add(1)
		go func(i int, c *websocket.Conn) {
			defer wg.Done()
			var seq uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, b, err := c.ReadMessage()
				if err != nil {
					errs <- err
					return
				}
				got, ok := tickSeq(b) // cheap: these frames are large
				if !ok {
					continue
				}
				if got != seq+1 {
					errs <- &seqError{want: seq + 1, got: got}
					return
				}
				seq = got
				counts[i]++
			}
		}(i, c)
	}
	eventually(t, 30*time.Second, "the slow client is dropped", func() bool {
		return stats(t, s)["slow_consumer_drops"].(float64) == 1
	})
	// The readers keep getting every tick after the drop.
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("a reading client was hurt: %v", err)
	default:
	}
	for i, n := range counts {
		if n < 20 {
			t.Fatalf("reader %d got only %d ticks", i, n)
		}
	}
	// The slow client finds its connection ended: a 4008 close if it got
	// that far, or the end of the stream.
	code, _ := closeCode(t, slow, 10*time.Second)
	if code != int(wire.CloseSlowConsumer) && code != -1 && code != websocket.CloseAbnormalClosure {
		t.Fatalf("slow client ended with %d", code)
	}
	eventually(t, 5*time.Second, "only the readers remain", func() bool { return s.n.hub.Len() == readers })
}

// tickSeq reads the seq of a tick frame without decoding it all.
func tickSeq(b []byte) (uint64, bool) {
	const prefix = `{"type":"tick","seq":`
	if !strings.HasPrefix(string(b[:min(len(b), len(prefix))]), prefix) {
		return 0, false
	}
	var n uint64
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

type seqError struct{ want, got uint64 }

func (e *seqError) Error() string { return fmt.Sprintf("tick seq %d, want %d", e.got, e.want) }

// TestSIGTERMDrainsWith1001 runs the real binary.
func TestSIGTERMDrainsWith1001(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "wspush")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-drain-rate", "100", "-push-interval", "100ms")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stderr)
	var wsAddr string
	re := regexp.MustCompile(`msg=listening ws=(\S+)`)
	for lines.Scan() {
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			wsAddr = m[1]
			break
		}
	}
	if wsAddr == "" {
		t.Fatal("no listening line")
	}
	go func() {
		for lines.Scan() {
		}
	}()
	const n = 50
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dial(t, "ws://"+wsAddr+"/ws")
		next(t, conns[i], 2*time.Second)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	codes := make(chan int, n)
	for _, c := range conns {
		go func(c *websocket.Conn) {
			code, _ := closeCode(t, c, 10*time.Second)
			codes <- code
		}(c)
	}
	for i := 0; i < n; i++ {
		if code := <-codes; code != websocket.CloseGoingAway {
			t.Fatalf("a client was closed with %d, want 1001", code)
		}
	}
	// 50 clients at 100 closes/s take about half a second, not an instant.
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("drain took %v; the drain rate was not applied", took)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v, want 0", err)
	}
	// New connections are refused once it has gone.
	if _, _, err := websocket.DefaultDialer.Dial("ws://"+wsAddr+"/ws", nil); err == nil {
		t.Fatal("dial after shutdown succeeded")
	}
}
