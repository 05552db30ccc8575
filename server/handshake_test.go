package main

import (
	"bufio"
	"net"
	"net/http"
	"runtime/metrics"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dataSegmentsIn is how many segments with data c's socket has received.
func dataSegmentsIn(t *testing.T, c net.Conn) uint32 {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) { info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return info.Data_segs_in
}

// The 101 response and the welcome reach the client in one segment
// (gateway/upgrade.go: TCP_CORK around the upgrade), not one each.
func TestHandshakeAndWelcomeInOneSegment(t *testing.T) {
	s := quietServer(t) // no tick or ping may follow the welcome
	for i := 0; i < 3; i++ {
		rc := rawDial(t, s) // reads the 101 and the welcome
		if n := dataSegmentsIn(t, rc.c); n != 1 {
			t.Fatalf("connection %d: the 101 and the welcome came in %d segments, want 1", i, n)
		}
	}
}

// A refused upgrade (here a foreign origin, which nbio's upgrader answers
// with 403 after the socket was corked) is answered at once, not when the
// kernel's 200 ms cork timer runs out.
func TestRefusedUpgradeNotHeldByTheCork(t *testing.T) {
	s := startServer(t)
	best := time.Hour
	for i := 0; i < 3; i++ {
		start := time.Now()
		resp, _ := rawHandshake(t, s, upgradeRequest(hostOf(s), "Origin: http://elsewhere.example"))
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("foreign origin: HTTP %d, want 403", resp.StatusCode)
		}
		best = min(best, time.Since(start))
	}
	if best >= 150*time.Millisecond {
		t.Fatalf("the fastest of 3 refused upgrades took %v: the answer waited for the cork (200 ms)", best)
	}
}

// goroutinesCreated is the process's count of goroutines created so far.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Handshakes run on the gateway's long-lived workers (gateway/executor.go),
// not each on a goroutine of its own, as nbio's default pool does. The
// client dials without a timeout (a dial with one starts a goroutine), and
// the connections stay open while goroutines are counted (nbio runs each
// OnClose on a goroutine of its own).
func TestHandshakesStartNoGoroutineEach(t *testing.T) {
	s := quietServer(t)
	req := []byte(upgradeRequest(hostOf(s)))
	handshake := func() {
		c, err := net.Dial("tcp", hostOf(s))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		rc := &rawConn{c: c, r: bufio.NewReader(c)}
		resp, err := http.ReadResponse(rc.r, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		if _, _, err := rc.readFrame(); err != nil { // the welcome
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ { // warm up: the workers start
		handshake()
	}
	const n = 200
	before := goroutinesCreated()
	for i := 0; i < n; i++ {
		handshake()
	}
	if created := goroutinesCreated() - before; created > n/4 {
		t.Fatalf("%d handshakes started %d goroutines, want at most %d", n, created, n/4)
	}
}
