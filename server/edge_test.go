package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// These tests cover the edge: what a connection may do before its
// WebSocket upgrade (server/internal/gateway/edge.go and limits.go).

// rawTCP dials the WebSocket port of s without sending anything.
func rawTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readStatus reads one HTTP response from c within d.
func readStatus(t *testing.T, c net.Conn, d time.Duration) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// closedWithin checks that the server closes c within d (EOF or reset),
// skipping whatever it sends before.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
}

func TestHeaderOverCapGets431AndClose(t *testing.T) {
	s := quietServer(t)
	c := rawTCP(t, hostOf(s))
	req := strings.Replace(upgradeRequest(hostOf(s)), "\r\n\r\n", "\r\nX-Pad: "+strings.Repeat("a", 9<<10)+"\r\n\r\n", 1)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	if code := readStatus(t, c, 5*time.Second); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("HTTP %d, want 431", code)
	}
	closedWithin(t, c, 5*time.Second)
	if n := statNum(t, s, "upgrade_failures", "too_large"); n != 1 {
		t.Fatalf("upgrade_failures.too_large = %v, want 1", n)
	}

	// A header just under the cap still upgrades.
	resp, rc := rawHandshake(t, s, upgradeRequest(hostOf(s), "X-Pad: "+strings.Repeat("a", 7<<10)))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("7 KiB header: HTTP %d, want 101", resp.StatusCode)
	}
	if op, p := rc.read(t); op != wire.OpText || !bytes.Contains(p, []byte(`"welcome"`)) {
		t.Fatalf("first frame op %d %q, want the welcome", op, p)
	}
}

// A header that never ends is cut at the cap: the server stops reading
// and closes, so the client's writes fail long before the 64 MiB nbio
// would otherwise buffer.
func TestEndlessHeaderIsCutAtTheCap(t *testing.T) {
	s := quietServer(t, "-max-header-bytes", "4096")
	c := rawTCP(t, hostOf(s))
	if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nX-Endless: "); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("a"), 16<<10)
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	sent, limit := 0, 32<<20
	var err error
	for sent < limit && err == nil {
		var n int
		n, err = c.Write(chunk)
		sent += n
	}
	if err == nil {
		t.Fatalf("the server took %d bytes of one header", sent)
	}
	t.Logf("the server cut the header after %d bytes sent: %v", sent, err)
}

func TestSlowlorisClosedAfterHandshakeTimeout(t *testing.T) {
	s := quietServer(t, "-handshake-timeout", "300ms", "-push-interval", "50ms")
	c := rawTCP(t, hostOf(s))
	start := time.Now()
	// One byte every 20 ms of a valid header that never ends.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for _, b := range []byte("GET /ws HTTP/1.1\r\nX-Slow: " + strings.Repeat("x", 200)) {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("HTTP %d, want 408 (or a close)", resp.StatusCode)
		}
	}
	closedWithin(t, c, 3*time.Second)
	if took := time.Since(start); took < 250*time.Millisecond || took > 2*time.Second {
		t.Fatalf("closed after %v, want about 300ms", took)
	}
	<-closed
	if n := statNum(t, s, "upgrade_failures", "handshake_timeout"); n != 1 {
		t.Fatalf("upgrade_failures.handshake_timeout = %v, want 1", n)
	}

	// A connection that upgraded in time is not affected by the deadline.
	ws := dial(t, s.ws)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		next(t, ws, time.Second)
	}
}

// Bytes pipelined behind an upgrade request are WebSocket frames: an HTTP
// request there is an unmasked frame, answered with close 1002, not with
// an HTTP page.
func TestPipelinedRequestAfterUpgradeIs1002(t *testing.T) {
	s := quietServer(t)
	resp, rc := rawHandshake(t, s, upgradeRequest(hostOf(s))+"GET / HTTP/1.1\r\nHost: "+hostOf(s)+"\r\n\r\n")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("HTTP %d, want 101", resp.StatusCode)
	}
	rc.expectClose(t, 1002)
	rc.expectEOF(t, 5*time.Second)
}

// A valid frame in the same write as the upgrade request is a message.
func TestFramePipelinedWithTheUpgradeIsAMessage(t *testing.T) {
	s := quietServer(t)
	ping := clientFrame(finBit|wire.OpText, []byte(`{"type":"ping","id":"early"}`))
	resp, rc := rawHandshake(t, s, upgradeRequest(hostOf(s))+string(ping))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("HTTP %d, want 101", resp.StatusCode)
	}
	for {
		op, p := rc.read(t)
		if op == wire.OpText && bytes.Contains(p, []byte(`"pong"`)) && bytes.Contains(p, []byte(`early`)) {
			return
		}
		if op == wire.OpClose {
			t.Fatalf("closed: %q", p)
		}
	}
}

func TestAddrInUseFailsFast(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, a := range []string{addr, ":99999"} {
		cfg, err := parseConfig([]string{"-addr", a, "-admin-addr", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		start0 := time.Now()
		done := make(chan error, 1)
		go func() {
			n, err := start(cfg)
			if err == nil {
				n.shutdown(cfg)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), a) {
				t.Fatalf("-addr %s: start returned %v, want an error naming the address", a, err)
			}
			if took := time.Since(start0); took > time.Second {
				t.Fatalf("-addr %s: took %v", a, took)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("-addr %s: start still running after 3s", a)
		}
	}

	// The binary exits with status 1 and one line naming the address.
	bin := buildServer(t)
	cmd := exec.Command(bin, "-addr", addr, "-admin-addr", "127.0.0.1:0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit: %v, want status 1", err)
		}
		if !strings.Contains(stderr.String(), addr) {
			t.Fatalf("stderr %q does not name %s", stderr.String(), addr)
		}
	case <-time.After(3 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("still running after 3s; stderr %q", stderr.String())
	}
}

func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wspush")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

// At the file limit (here 128 descriptors: a default cap of 64 clients,
// 80 open sockets), a socket over the cap is answered 503 at once, and the
// admin API still answers.
func TestFileLimitGives503AndAdminAnswers(t *testing.T) {
	bin := buildServer(t)
	cmd := exec.Command("sh", "-c", `ulimit -n 128 && exec "$0" "$@"`, bin,
		"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-handshake-timeout", "1m", "-pollers", "1") // few files of its own
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`msg=listening ws=(\S+) admin=(\S+)`)
	var wsAddr, adminAddr string
	for lines.Scan() {
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			wsAddr, adminAddr = m[1], m[2]
			break
		}
	}
	if wsAddr == "" {
		t.Fatal("no listening line")
	}
	var logged bytes.Buffer
	go func() {
		for lines.Scan() {
			logged.WriteString(lines.Text() + "\n")
		}
	}()
	// 80 sockets are held open without a word.
	for i := 0; i < 80; i++ {
		rawTCP(t, wsAddr)
	}
	// The next ones get 503 and are closed.
	for i := 0; i < 20; i++ {
		c := rawTCP(t, wsAddr)
		if code := readStatus(t, c, 3*time.Second); code != http.StatusServiceUnavailable {
			t.Fatalf("socket %d over the cap: HTTP %d, want 503", 81+i, code)
		}
		closedWithin(t, c, 3*time.Second)
	}
	for i := 0; i < 5; i++ {
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + adminAddr + "/healthz")
		if err != nil {
			t.Fatalf("/healthz: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz: HTTP %d", resp.StatusCode)
		}
	}
}

// Over TLS the bytes are ciphertext at the edge, but the handshake
// deadline holds all the same, and a wss:// client that upgraded in time
// stays.
func TestTLSHandshakeTimeout(t *testing.T) {
	certPath, keyPath, pool := selfSigned(t)
	s := startServer(t, "-tls-cert", certPath, "-tls-key", keyPath, "-handshake-timeout", "300ms", "-push-interval", "50ms")
	start0 := time.Now()
	c := rawTCP(t, hostOf(s))
	closedWithin(t, c, 3*time.Second)
	if took := time.Since(start0); took < 250*time.Millisecond {
		t.Fatalf("closed after %v, want about 300ms", took)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: pool}}
	ws, _, err := d.Dial("wss://"+hostOf(s)+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		next(t, ws, time.Second)
	}
}
