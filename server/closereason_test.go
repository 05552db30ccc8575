package main

import (
	"net"
	"testing"
	"time"

	"wspush/server/internal/metrics"
	"wspush/server/wire"
)

// A client that ends its connection the ordinary way — a close frame, then
// its socket closed at once (the FIN, or a reset when ticks are still
// unread) — is counted as a "client" close, not a "write_error", even
// when the server's answer to the close frame or a tick races the closed
// socket. (Issue 11, item 12: a quiet churn run counted 3,096 of ~6,000
// ordinary client closes as write_error.)
func TestClientCloseIsCountedAsClientWhenAWriteRacesIt(t *testing.T) {
	s := startServer(t, "-push-interval", "10ms", "-ping-interval", "0", "-accept-rate", "0")
	const n = 200
	for i := range n {
		rc := rawDial(t, s)
		if i%2 == 1 {
			// Leave ticks unread: closing then resets the connection.
			time.Sleep(5 * time.Millisecond)
		}
		rc.send(t, clientFrame(finBit|wire.OpClose, closePayload(1000, "")))
		if tc, ok := rc.c.(*net.TCPConn); ok && i%4 == 3 {
			_ = tc.SetLinger(0) // an abortive close right after the close frame
		}
		_ = rc.c.Close()
	}
	m := s.n.m
	eventually(t, 10*time.Second, "every close counted", func() bool {
		var sum uint64
		for _, r := range []string{metrics.ClosedByClient, metrics.ClosedWriteError, metrics.ClosedSlow,
			metrics.ClosedProtocol, metrics.ClosedTimeout, metrics.ClosedIdle} {
			sum += m.ClosedCount(r)
		}
		return sum == n
	})
	if got, we := m.ClosedCount(metrics.ClosedByClient), m.ClosedCount(metrics.ClosedWriteError); got != n || we != 0 {
		t.Fatalf("closes: client %d, write_error %d; want client %d, write_error 0", got, we, n)
	}
}
