package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wspush/server/wire"
)

// A client that sends a close frame and resets its connection at once
// must not take a healthy new connection down with it. nbio closes the
// first socket after the close frame; a socket closed by a goroutine other
// than its poller, while the poller still holds the reset's hang-up event
// for its descriptor, hands that event to the next socket accepted on the
// same descriptor number (see server/internal/gateway/pollerclose.go).
func TestCloseAndResetDoesNotKillNewConnections(t *testing.T) {
	s := startServer(t, "-max-conns-per-ip", "0", "-accept-rate", "0", "-push-interval", "1s")
	addr := hostOf(s)
	req := upgradeRequest(addr)
	const (
		closers, openers = 6, 2
		batch            = 100 // connections an opener holds before it checks them
		maxCycles        = 50_000
	)
	stop := time.Now().Add(3 * time.Second)

	var (
		wg       sync.WaitGroup
		resets   atomic.Int64
		opened   atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for range closers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			closeFrame := clientFrame(finBit|wire.OpClose, closePayload(1000, ""))
			for i := 0; i < maxCycles && time.Now().Before(stop); i++ {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					continue
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(c, req); err == nil {
					// Its upgrade is a fresh connection's too, and must succeed.
					rc := &rawConn{c: c, r: bufio.NewReader(c)}
					resp, err := http.ReadResponse(rc.r, nil)
					switch {
					case err != nil:
						fail("closer: upgrade: reading the response: %v", err)
					case resp.StatusCode != http.StatusSwitchingProtocols:
						fail("closer: upgrade: HTTP %d", resp.StatusCode)
					default:
						// The reset follows the server's answer to the close
						// frame, so it races nbio's close after that answer.
						_, _ = c.Write(closeFrame)
						for {
							op, _, err := rc.readFrame()
							if err != nil || op == wire.OpClose {
								break
							}
						}
					}
				}
				_ = c.(*net.TCPConn).SetLinger(0) // close with RST
				_ = c.Close()
				resets.Add(1)
			}
		}()
	}
	for g := range openers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held []*rawConn
			check := func() {
				for i, rc := range held {
					if err := pingPong(rc); err != nil {
						fail("opener %d: connection %d of its batch died: %v", g, i, err)
					}
					_ = rc.c.Close()
				}
				held = held[:0]
			}
			for i := 0; i < maxCycles && time.Now().Before(stop); i++ {
				rc, err := upgradeRaw(addr, req)
				if err != nil {
					fail("opener %d: upgrade: %v", g, err)
					continue
				}
				opened.Add(1)
				held = append(held, rc)
				if len(held) == batch {
					check()
				}
			}
			check()
		}()
	}
	wg.Wait()

	_, body := get(t, s.admin+"/metrics")
	badHandshakes := metricValue(body, `wspush_upgrade_failures_total{reason="bad_handshake"}`)
	t.Logf("%d close+reset cycles, %d upgrades held and checked, %d failed, %v bad handshakes",
		resets.Load(), opened.Load(), len(failures), badHandshakes)
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Error(f)
	}
	if badHandshakes != 0 {
		t.Errorf(`wspush_upgrade_failures_total{reason="bad_handshake"} = %v, want 0`, badHandshakes)
	}
	if resets.Load() < 100 || opened.Load() < 100 {
		t.Fatalf("only %d resets and %d upgrades: the test did not run", resets.Load(), opened.Load())
	}
}

// A client that sends a close frame and then neither reads nor closes its
// side still has its socket closed, and counted, by the server: the
// shutdown the gateway makes instead of a close wakes the poller, which
// closes it.
func TestCloseFrameFromASilentPeerReleasesTheSocket(t *testing.T) {
	s := startServer(t, "-push-interval", "1s")
	rc := rawDial(t, s)
	rc.send(t, clientFrame(finBit|wire.OpClose, closePayload(1000, "")))
	rc.expectClose(t, 1000)
	rc.expectEOF(t, 5*time.Second)
	eventually(t, 5*time.Second, "no connections", func() bool {
		return stats(t, s)["connections"].(float64) == 0
	})
	if got := stats(t, s)["closed"].(map[string]any)["client"]; got != float64(1) {
		t.Fatalf("closed by client = %v, want 1", got)
	}
}

// upgradeRaw upgrades a raw connection and reads the welcome, which must
// be the first frame.
func upgradeRaw(addr, req string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c: c, r: bufio.NewReader(c)}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, fmt.Errorf("writing the request: %w", err)
	}
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	op, p, err := rc.readFrame()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading the welcome: %w", err)
	}
	if op != wire.OpText || !bytes.Contains(p, []byte(`"welcome"`)) {
		c.Close()
		return nil, fmt.Errorf("first frame op %d %q, want the welcome", op, p)
	}
	_ = c.SetDeadline(time.Time{})
	return rc, nil
}

// pingPong sends a ping and reads until its pong.
func pingPong(rc *rawConn) error {
	_ = rc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.c.Write(clientFrame(finBit|wire.OpPing, []byte("p"))); err != nil {
		return err
	}
	for {
		op, _, err := rc.readFrame()
		if err != nil {
			return err
		}
		if op == wire.OpPong {
			return nil
		}
		if op == wire.OpClose {
			return fmt.Errorf("closed by the server")
		}
	}
}

// metricValue returns the value of the sample named name (with its
// labels) in a Prometheus text body, or -1 if there is none.
func metricValue(body, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}
