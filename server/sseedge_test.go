package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// getPlain sends GET url with the header lines but without an Accept
// header (as curl does) and returns the status, header and body.
func getPlain(t *testing.T, url string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, resp.Header, string(b)
}

// wantRefusalStream checks that st is a transient refusal sent as a
// stream: 200 text/event-stream, a retry field in the drain's window,
// one close event with code, and the end.
func wantRefusalStream(t *testing.T, what string, st *sseStream, code float64) map[string]any {
	t.Helper()
	if st.status != 200 || !strings.HasPrefix(st.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%s: %d %q %q, want a 200 event stream", what, st.status, st.header.Get("Content-Type"), st.body)
	}
	r, err := strconv.Atoi(st.next("retry", 2*time.Second).retry)
	if err != nil || r < 1000 || r >= 5000 {
		t.Errorf("%s: retry %d (%v), want [1000, 5000) ms", what, r, err)
	}
	c := jsonOf(t, st.next("close", 2*time.Second).data)
	if c["type"] != "close" || c["code"] != code || c["reason"] == "" {
		t.Errorf("%s: close event %v, want code %v with a reason", what, c, code)
	}
	st.ended(2 * time.Second)
	return c
}

// TestSSETransientRefusalsAsStreams: a request that asks for an event
// stream and is refused for a passing reason (-max-conns, the accept rate,
// the per-IP cap, the drain) gets a 200 stream with a retry field and a
// close event (1013, 1013, 4429, 1001), so that an EventSource tries
// again; without that Accept the HTTP statuses stay; permanent refusals
// keep their statuses either way.
func TestSSETransientRefusalsAsStreams(t *testing.T) {
	t.Run("max-conns", func(t *testing.T) {
		s := startServer(t, "-push-interval", "0", "-max-conns", "1")
		first := openSSE(t, s.sse("?topics=a"))
		first.next("subscribed", 2*time.Second)
		wantRefusalStream(t, "over -max-conns", openSSE(t, s.sse("?topics=a")), 1013)
		if code, h, body := getPlain(t, s.sse("?topics=a")); code != 503 || h.Get("Retry-After") == "" {
			t.Errorf("over -max-conns without Accept: %d %q %v, want 503 with Retry-After", code, body, h)
		}
	})
	t.Run("accept-rate", func(t *testing.T) {
		s := startServer(t, "-push-interval", "0", "-accept-rate", "1", "-accept-burst", "1")
		first := openSSE(t, s.sse("?topics=a"))
		first.next("subscribed", 2*time.Second)
		wantRefusalStream(t, "over the accept rate", openSSE(t, s.sse("?topics=a")), 1013)
		if code, _, body := getPlain(t, s.sse("?topics=a")); code != 503 {
			t.Errorf("over the accept rate without Accept: %d %q, want 503", code, body)
		}
	})
	t.Run("per-ip", func(t *testing.T) {
		s := startServer(t, "-push-interval", "0", "-max-conns-per-ip", "1")
		first := openSSE(t, s.sse("?topics=a"))
		first.next("subscribed", 2*time.Second)
		wantRefusalStream(t, "over the per-IP cap", openSSE(t, s.sse("?topics=a")), 4429)
		if code, _, body := getPlain(t, s.sse("?topics=a")); code != 429 {
			t.Errorf("over the per-IP cap without Accept: %d %q, want 429", code, body)
		}
	})
	t.Run("drain", func(t *testing.T) {
		s := startServer(t, "-push-interval", "0")
		// Keep-alive connections whose first request was refused (400):
		// their next requests come in after the drain has begun.
		addr := s.n.gw.Addr().String()
		send := func(c net.Conn, q, accept string) {
			t.Helper()
			if _, err := c.Write([]byte("GET /sse" + q + " HTTP/1.1\r\nHost: " + addr + "\r\n" + accept + "\r\n")); err != nil {
				t.Fatal(err)
			}
		}
		var conns [2]net.Conn
		var readers [2]*bufio.Reader
		for i := range conns {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			conns[i], readers[i] = c, bufio.NewReader(c)
			send(c, "?mode=x", "Accept: text/event-stream\r\n")
			resp, err := http.ReadResponse(readers[i], nil)
			if err != nil || resp.StatusCode != 400 {
				t.Fatalf("bad mode: %v %v, want 400", resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
		}
		s.n.gw.StopAccepting()
		send(conns[0], "?topics=a", "Accept: text/event-stream\r\n")
		resp, err := http.ReadResponse(readers[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
			!strings.HasPrefix(string(body), "retry: ") ||
			!strings.HasSuffix(string(body), "\n\nevent: close\ndata: {\"type\":\"close\",\"code\":1001,\"reason\":\"server shutting down\"}\n\n") {
			t.Errorf("during the drain: %d %v %q, want a 200 stream with retry and close 1001", resp.StatusCode, resp.Header, body)
		}
		if n, err := readers[0].Read(make([]byte, 1)); err == nil {
			t.Errorf("the refusal stream's connection stays open (read %d)", n)
		}
		send(conns[1], "?topics=a", "")
		if resp, err := http.ReadResponse(readers[1], nil); err != nil || resp.StatusCode != 503 {
			t.Errorf("during the drain without Accept: %v %v, want 503", resp, err)
		}
	})
	t.Run("permanent", func(t *testing.T) {
		s := startServer(t, "-push-interval", "0", "-jwt-secret", testSecret, "-allowed-origins", "http://good.example")
		tok := hsToken(t, tokenOpts{sub: "ann", exp: time.Now().Add(time.Hour), topics: []string{"a"}})
		for _, c := range []struct {
			what, q string
			header  []string
			status  int
		}{
			{"no token", "?topics=a", nil, 401},
			{"bad token", "?topics=a&token=x.y.z", nil, 401},
			{"topic outside the token", "?topics=b&token=" + tok, nil, 403},
			{"bad mode", "?topics=a&mode=fast&token=" + tok, nil, 400},
			{"refused origin", "?topics=a&token=" + tok, []string{"Origin: http://evil.example"}, 403},
		} {
			if st := openSSE(t, s.sse(c.q), c.header...); st.status != c.status {
				t.Errorf("%s: %d %q, want %d", c.what, st.status, st.body, c.status)
			}
		}
		addr := s.n.gw.Addr().String()
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write([]byte("POST /sse?topics=a HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\nContent-Length: 0\r\n\r\n"))
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 405 {
			t.Errorf("POST: %v %v, want 405", resp, err)
		}
	})
}

// TestSSECORS: an Origin the WebSocket policy allows is reflected in
// Access-Control-Allow-Origin (with credentials and Vary: Origin), on the
// stream, on a transient refusal stream and on an HTTP refusal; a refused
// Origin gets 403 without it, a request without Origin nothing.
func TestSSECORS(t *testing.T) {
	s := startServer(t, "-push-interval", "0", "-max-conns", "1", "-allowed-origins", "http://good.example")
	const good = "http://good.example"
	wantCORS := func(what string, h http.Header) {
		t.Helper()
		if h.Get("Access-Control-Allow-Origin") != good || h.Get("Access-Control-Allow-Credentials") != "true" ||
			!strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
			t.Errorf("%s: header %v, want CORS for %s", what, h, good)
		}
	}
	st := openSSE(t, s.sse("?topics=a"), "Origin: "+good)
	if st.status != 200 {
		t.Fatalf("allowed origin: %d %q", st.status, st.body)
	}
	wantCORS("stream", st.header)
	st.next("subscribed", 2*time.Second)

	over := openSSE(t, s.sse("?topics=a"), "Origin: "+good)
	wantCORS("refusal stream", over.header)
	wantRefusalStream(t, "over -max-conns", over, 1013)

	bad := openSSE(t, s.sse("?topics=a&mode=fast"), "Origin: "+good)
	if bad.status != 400 {
		t.Errorf("bad mode: %d", bad.status)
	}
	wantCORS("400", bad.header)

	evil := openSSE(t, s.sse("?topics=a"), "Origin: http://evil.example")
	if evil.status != 403 || evil.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("refused origin: %d %v, want 403 without CORS", evil.status, evil.header)
	}
	// Without Origin (a 200 refusal stream here: -max-conns is taken).
	if none := openSSE(t, s.sse("?topics=a")); none.status != 200 || none.header.Get("Access-Control-Allow-Origin") != "" || none.header.Get("Vary") != "" {
		t.Errorf("no Origin: %d %v, want no CORS", none.status, none.header)
	}
}

// TestSSECORSHookRefusal: a stream the connect hook refuses (a raw answer
// written after the hijack) carries the CORS fields of an allowed Origin.
func TestSSECORSHookRefusal(t *testing.T) {
	be := newBackend(t, func(string, map[string]any) (int, string) {
		return 200, `{"error":{"message":"members only"}}`
	})
	const good = "http://good.example"
	s := startServer(t, "-push-interval", "0", "-proxy-connect", be.url("/connect"), "-allowed-origins", good)
	st := openSSE(t, s.sse("?topics=a"), "Origin: "+good)
	if st.status != 403 || !strings.Contains(st.body, "members only") {
		t.Fatalf("refused by the hook: %d %q, want 403", st.status, st.body)
	}
	if st.header.Get("Access-Control-Allow-Origin") != good || st.header.Get("Access-Control-Allow-Credentials") != "true" || st.header.Get("Vary") != "Origin" {
		t.Errorf("refused by the hook: header %v, want CORS for %s", st.header, good)
	}
}
