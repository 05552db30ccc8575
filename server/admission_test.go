package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// dialFrom dials from a loopback source address (127.0.0.x); it returns the
// refused upgrade's response (nil on success).
func dialFrom(t *testing.T, url, src string, hdr http.Header) (*websocket.Conn, *http.Response) {
	t.Helper()
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nd.DialContext(ctx, network, addr)
		}}
	c, resp, err := d.Dial(url, hdr)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		resp.Body.Close()
		return nil, resp
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func TestMaxConnsPerIP(t *testing.T) {
	s := startServer(t, "-max-conns-per-ip", "3", "-push-interval", "0")
	var first []*websocket.Conn
	for i := 0; i < 3; i++ {
		c, resp := dialFrom(t, s.ws, "127.0.0.1", nil)
		if resp != nil {
			t.Fatalf("connection %d from 127.0.0.1: HTTP %d", i, resp.StatusCode)
		}
		welcomed(t, c)
		first = append(first, c)
	}
	if _, resp := dialFrom(t, s.ws, "127.0.0.1", nil); resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th from 127.0.0.1: %v, want 429", resp)
	}
	// Another address has its own allowance.
	for i := 0; i < 3; i++ {
		c, resp := dialFrom(t, s.ws, "127.0.0.2", nil)
		if resp != nil {
			t.Fatalf("connection %d from 127.0.0.2: HTTP %d", i, resp.StatusCode)
		}
		welcomed(t, c)
	}
	if n := statNum(t, s, "upgrade_failures", "per_ip"); n != 1 {
		t.Fatalf("upgrade_failures.per_ip = %v, want 1", n)
	}
	// A closed connection gives its slot back.
	first[0].Close()
	eventually(t, 5*time.Second, "slot given back", func() bool {
		c, resp := dialFrom(t, s.ws, "127.0.0.1", nil)
		if resp != nil {
			return false
		}
		welcomed(t, c)
		return true
	})
}

func TestAcceptRate503WithRetryAfter(t *testing.T) {
	s := startServer(t, "-accept-rate", "1", "-accept-burst", "3", "-push-interval", "0")
	start := time.Now()
	for i := 0; i < 3; i++ {
		c, resp := dialFrom(t, s.ws, "127.0.0.1", nil)
		if resp != nil {
			t.Fatalf("connection %d within the burst: HTTP %d", i, resp.StatusCode)
		}
		welcomed(t, c)
	}
	_, resp := dialFrom(t, s.ws, "127.0.0.1", nil)
	if time.Since(start) > 900*time.Millisecond {
		t.Skip("dialing took so long that the bucket refilled")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("4th connection: %v, want 503", resp)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q, want 1 or 2 s", resp.Header.Get("Retry-After"))
	}
	if n := statNum(t, s, "upgrade_failures", "accept_rate"); n != 1 {
		t.Fatalf("upgrade_failures.accept_rate = %v, want 1", n)
	}
	// The bucket refills at the rate: one more within about a second.
	eventually(t, 3*time.Second, "refilled", func() bool {
		c, resp := dialFrom(t, s.ws, "127.0.0.1", nil)
		if resp != nil {
			return false
		}
		welcomed(t, c)
		return true
	})
}

func TestMessageRateLimitCloses1008(t *testing.T) {
	s := startServer(t, "-max-msg-rate", "10", "-max-msg-burst", "5", "-push-interval", "0")
	// A flood: closed with 1008 "rate limit".
	flood := dial(t, s.ws)
	welcomed(t, flood)
	for i := 0; i < 50; i++ {
		if err := flood.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
			break // the server may already have closed
		}
	}
	if code, reason := closeCode(t, flood, 5*time.Second); code != int(wire.ClosePolicy) || reason != "rate limit" {
		t.Fatalf("flood closed with %d %q, want 1008 \"rate limit\"", code, reason)
	}
	eventually(t, 5*time.Second, "counted", func() bool { return statNum(t, s, "closed", "rate_limit") == 1 })
	// Another client within its burst is unaffected: every ping answered.
	polite := dial(t, s.ws)
	welcomed(t, polite)
	for i := 0; i < 5; i++ {
		send(t, polite, `{"type":"ping","id":`+strconv.Itoa(i)+`}`)
	}
	for i := 0; i < 5; i++ {
		if m := next(t, polite, 2*time.Second); m.Type != wire.TypePong {
			t.Fatalf("%+v, want pong", m)
		}
	}
}

func TestOrigins(t *testing.T) {
	origin := func(o string) http.Header {
		if o == "" {
			return nil
		}
		return http.Header{"Origin": {o}}
	}
	check := func(s *testServer, o string, want int) {
		t.Helper()
		c, resp := dialFrom(t, s.ws, "127.0.0.1", origin(o))
		got := 0
		if resp != nil {
			got = resp.StatusCode
		} else {
			c.Close()
		}
		if got != want {
			t.Errorf("Origin %q: HTTP %d, want %d", o, got, want)
		}
	}
	// Default: same origin as Host, or no Origin at all.
	def := startServer(t)
	host := def.n.gw.Addr().String()
	check(def, "", 0)
	check(def, "http://"+host, 0)
	check(def, "https://"+host, 0)
	check(def, "http://evil.example", http.StatusForbidden)
	check(def, "http://"+host+".evil.example", http.StatusForbidden)
	check(def, "null", http.StatusForbidden)
	if n := statNum(t, def, "upgrade_failures", "bad_origin"); n != 3 {
		t.Errorf("upgrade_failures.bad_origin = %v, want 3", n)
	}
	// A list: exactly those (case-insensitive), not the server's own.
	list := startServer(t, "-allowed-origins", "https://app.example, http://Localhost:3000")
	check(list, "", 0)
	check(list, "https://app.example", 0)
	check(list, "http://localhost:3000", 0)
	check(list, "http://app.example", http.StatusForbidden)
	check(list, "https://app.example:444", http.StatusForbidden)
	check(list, "http://"+list.n.gw.Addr().String(), http.StatusForbidden)
	// "*": anything.
	star := startServer(t, "-allowed-origins", "*")
	check(star, "http://evil.example", 0)
	// An origin with a path is a configuration error, found at start.
	cfg, err := parseConfig([]string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-allowed-origins", "https://a.example/path"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := start(cfg); err == nil {
		n.shutdown(cfg)
		t.Error("an origin with a path was accepted")
	}
}

// TestReconnectStormAdmittedAtRate: many clients arrive at once, more than
// the accept rate; the excess gets 503 with Retry-After, the clients retry
// as told, and all are in after about (clients − burst) / rate seconds.
func TestReconnectStormAdmittedAtRate(t *testing.T) {
	const clients, rate, burst = 400, 200, 100
	s := startServer(t, "-accept-rate", strconv.Itoa(rate), "-accept-burst", strconv.Itoa(burst), "-push-interval", "0")
	var refused, in atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	conns := make(chan *websocket.Conn, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				c, resp, err := websocket.DefaultDialer.Dial(s.ws, nil)
				if err == nil {
					in.Add(1)
					conns <- c
					return
				}
				if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("dial: %v", err)
					return
				}
				resp.Body.Close()
				refused.Add(1)
				ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				// Retry after Retry-After, spread over a second (jitter).
				time.Sleep(time.Duration(ra)*time.Second + time.Duration(i%10)*100*time.Millisecond)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(conns)
	for c := range conns {
		c.Close()
	}
	if in.Load() != clients {
		t.Fatalf("%d of %d clients got in within %v", in.Load(), clients, took)
	}
	if refused.Load() == 0 {
		t.Fatal("no upgrade was refused: the accept rate did not apply")
	}
	// Admitted no faster than burst + rate × time.
	if min := time.Duration(float64(clients-burst) / rate * float64(time.Second)); took < min {
		t.Fatalf("all in after %v, faster than the rate allows (%v)", took, min)
	}
	if code, _ := get(t, s.admin+"/healthz"); code != 200 {
		t.Fatalf("healthz %d after the storm", code)
	}
	t.Logf("%d clients, accept-rate %d burst %d: all in after %v, %d refusals (503)", clients, rate, burst, took.Round(time.Millisecond), refused.Load())
}
