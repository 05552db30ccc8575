package main

import (
	"net"
	"net/http"
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
	s := startServer(t)
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
