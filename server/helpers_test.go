package main

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// testServer is a real server started in-process on loopback ports.
type testServer struct {
	cfg   Config
	n     *node
	ws    string // ws://host:port/ws
	admin string // http://host:port
}

// startServer starts a server with the given flags (on top of loopback
// addresses) and stops it when the test ends.
func startServer(t *testing.T, flags ...string) *testServer {
	t.Helper()
	args := append([]string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, flags...)
	cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownTimeout = 3 * time.Second
	n, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{cfg: cfg, n: n, ws: "ws://" + n.gw.Addr().String() + "/ws", admin: "http://" + n.admin.Addr().String()}
	t.Cleanup(func() { n.shutdown(cfg) })
	return s
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next reads one server message, failing the test after d.
func next(t *testing.T, c *websocket.Conn, d time.Duration) wire.ServerMsg {
	t.Helper()
	m, err := tryNext(c, d)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func tryNext(c *websocket.Conn, d time.Duration) (wire.ServerMsg, error) {
	var m wire.ServerMsg
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, b, err := c.ReadMessage()
	if err != nil {
		return m, err
	}
	return m, wire.ParseServer(b, &m)
}

// nextOf reads until a message of type typ arrives, skipping ticks.
func nextOf(t *testing.T, c *websocket.Conn, typ string, d time.Duration) wire.ServerMsg {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m := next(t, c, time.Until(deadline))
		if m.Type == typ {
			return m
		}
		if m.Type != wire.TypeTick {
			t.Fatalf("got %+v while waiting for %s", m, typ)
		}
	}
	t.Fatalf("no %s within %v", typ, d)
	return wire.ServerMsg{}
}

func send(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// closeCode reads until the connection ends and returns the close code
// (-1 for an end without a close frame).
func closeCode(t *testing.T, c *websocket.Conn, d time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(d)
	_ = c.SetReadDeadline(deadline)
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code, ce.Text
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection still open after %v", d)
		}
		return -1, err.Error()
	}
}

func stats(t *testing.T, s *testServer) map[string]any {
	t.Helper()
	resp, err := http.Get(s.admin + "/v1/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
