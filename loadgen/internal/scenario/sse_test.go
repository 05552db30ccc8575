package scenario

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestTicksOverSSE runs the ticks scenario with -transport sse against an
// SSE stream (net/http, as wspush's /sse writes it): every connection's
// welcome and ticks are read off the events, with heartbeats and retry
// fields in between, and checked as over WebSocket.
func TestTicksOverSSE(t *testing.T) {
	var streams atomic.Int64
	var badPath atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/sse" || r.Header.Get("Accept") != "text/event-stream" {
			badPath.Store(r.URL.String())
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		streams.Add(1)
		// Hijacked and close-delimited, as wspush writes it (net/http
		// would chunk the body).
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
		bw.WriteString("retry: 1200\n\nevent: welcome\ndata: {\"type\":\"welcome\",\"id\":\"c1\",\"interval_ms\":100}\n\n")
		if bw.Flush() != nil {
			return
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for seq := 1; seq <= 50; seq++ {
			now := <-tick.C
			// a tick cut into two data lines, then a heartbeat
			fmt.Fprintf(bw, "event: tick\ndata: {\"type\":\"tick\",\ndata: \"seq\":%d,\"due\":%d}\n\n:\n\n", seq, now.UnixNano())
			if bw.Flush() != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	cfg := Config{Scenario: "ticks", URL: srv.URL + "/sse", Conns: 20, Rate: 1000, Duration: 1500 * time.Millisecond,
		Pollers: 2, Dialers: 4, Timeout: 5 * time.Second, Procs: 1, Transport: "sse"}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Log = io.Discard
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := r.Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := badPath.Load(); p != nil {
		t.Fatalf("request for %v", p)
	}
	if streams.Load() != 20 || res.Welcomes != 20 || res.Messages < 20*3 || res.Gaps != 0 || res.Duplicates != 0 || res.WelcomeMissing != 0 {
		t.Fatalf("streams %d, result %+v", streams.Load(), res)
	}
	if len(res.Errors) != 0 {
		t.Fatalf("errors %v", res.Errors)
	}
}

// TestSSETransportChecked: -transport takes ws or sse, and sse serves
// the scenarios in which a client sends nothing.
func TestSSETransportChecked(t *testing.T) {
	for _, c := range []Config{{Scenario: "ticks", Transport: "smoke"}, {Scenario: "echo", Transport: "sse"}, {Scenario: "churn", Transport: "sse"}} {
		c.Conns, c.Rate, c.Duration, c.Topics, c.Admin = 1, 1, time.Second, 1, "http://127.0.0.1:1"
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "transport") {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for url, want := range map[string]string{"http://127.0.0.1:8080/sse": "sse", "ws://127.0.0.1:8080/ws": "ws"} {
		c := Config{URL: url}
		if c.setDefaults(); c.Transport != want {
			t.Errorf("-url %s: transport %q, want %q", url, c.Transport, want)
		}
	}
	if got := sseTopicPath("/sse?mode=stream", "t1"); got != "/sse?mode=stream&topics=t1" {
		t.Errorf("sseTopicPath: %q", got)
	}
}
