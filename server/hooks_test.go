package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// backend is the application's side of the hooks: a real HTTP server on
// 127.0.0.1 whose handler f answers each hook request (path /connect,
// /subscribe, /rpc, /publish) from its decoded JSON.
type backend struct {
	srv   *httptest.Server
	calls atomic.Int64
	mu    sync.Mutex
	last  map[string]map[string]any // path → last request
}

func newBackend(t *testing.T, f func(path string, req map[string]any) (status int, body string)) *backend {
	t.Helper()
	b := &backend{last: map[string]map[string]any{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		raw, _ := io.ReadAll(r.Body)
		var req map[string]any
		if err := json.Unmarshal(raw, &req); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad hook request", http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.last[r.URL.Path] = req
		b.mu.Unlock()
		status, body := f(r.URL.Path, req)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) url(path string) string { return b.srv.URL + path }

func (b *backend) lastRequest(path string) map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last[path]
}

// hookDial dials and reads the welcome.
func hookDial(t *testing.T, s *testServer) *websocket.Conn {
	t.Helper()
	c := dial(t, s.ws)
	if m := next(t, c, 5*time.Second); m.Type != wire.TypeWelcome {
		t.Fatalf("first frame %+v, want welcome", m)
	}
	return c
}

func TestHookRPCRoundTripErrorsAndOrder(t *testing.T) {
	be := newBackend(t, func(_ string, req map[string]any) (int, string) {
		switch req["method"] {
		case "echo":
			d, _ := json.Marshal(map[string]any{"echo": req["data"], "client": req["client"]})
			return 200, `{"result":` + string(d) + `}`
		case "slow":
			time.Sleep(300 * time.Millisecond)
			return 200, `{"result":"late"}`
		case "refuse":
			return 200, `{"error":{"code":"no_such_cart","message":"cart 7 is gone"}}`
		case "garbage":
			return 200, `<html>oops`
		case "neither":
			return 200, `{"ok":1}`
		case "status":
			return 500, `{"result":1}`
		}
		return 200, `{"error":{"message":"unknown method"}}`
	})
	s := startServer(t, "-push-interval", "0", "-proxy-rpc", be.url("/rpc"))
	c := dial(t, s.ws)
	w := next(t, c, 5*time.Second)

	send(t, c, `{"type":"rpc","id":1,"method":"echo","data":{"n":[1,2]}}`)
	m := next(t, c, 5*time.Second)
	if m.Type != wire.TypeRPCResult || string(m.ID) != "1" || !strings.Contains(string(m.Data), `"echo":{"n":[1,2]}`) || !strings.Contains(string(m.Data), string(w.ID)) {
		t.Fatalf("rpc echo: %+v (welcome id %s)", m, w.ID)
	}
	for _, tc := range []struct{ method, code, reason string }{
		{"refuse", "no_such_cart", "cart 7 is gone"},
		{"other", "backend_error", "unknown method"},
		{"garbage", wire.CodeBadGateway, "not JSON"},
		{"neither", wire.CodeBadGateway, "neither result nor error"},
		{"status", wire.CodeBadGateway, "HTTP 500"},
	} {
		send(t, c, `{"type":"rpc","id":"x","method":"`+tc.method+`"}`)
		m := next(t, c, 5*time.Second)
		if m.Type != wire.TypeError || m.Code != tc.code || !strings.Contains(m.Reason, tc.reason) || string(m.ID) != `"x"` {
			t.Fatalf("rpc %s: %+v, want error %s mentioning %q", tc.method, m, tc.code, tc.reason)
		}
	}
	// Order: a ping (and a bad message) sent after an rpc are answered after
	// its rpc_result, though the rpc takes 300 ms.
	send(t, c, `{"type":"rpc","id":2,"method":"slow"}`)
	send(t, c, `{"type":"ping","id":3}`)
	send(t, c, `{"type":"nonsense"}`)
	send(t, c, `{"type":"rpc","id":4,"method":"echo","data":4}`)
	send(t, c, `{"type":"ping","id":5}`)
	var got []string
	for len(got) < 5 {
		m := next(t, c, 5*time.Second)
		got = append(got, m.Type+":"+string(m.ID))
	}
	if want := "rpc_result:2 pong:3 error: rpc_result:4 pong:5"; strings.Join(got, " ") != want {
		t.Fatalf("replies %v, want %s", got, want)
	}

	// At most 16 messages wait behind a call; each one over that is
	// answered "overloaded" at once, and not handled.
	send(t, c, `{"type":"rpc","id":"s","method":"slow"}`)
	for i := range 20 {
		send(t, c, fmt.Sprintf(`{"type":"ping","id":%d}`, 100+i))
	}
	got = got[:0]
	for len(got) < 21 {
		m := next(t, c, 5*time.Second)
		got = append(got, m.Type+":"+m.Code+":"+string(m.ID))
	}
	want := []string{"error:overloaded:116", "error:overloaded:117", "error:overloaded:118", "error:overloaded:119", `rpc_result::"s"`}
	for i := range 16 {
		want = append(want, fmt.Sprintf("pong::%d", 100+i))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("21 messages behind a call: %v, want %v", got, want)
	}

	// Without the hook: not_available.
	s2 := startServer(t, "-push-interval", "0")
	c2 := hookDial(t, s2)
	send(t, c2, `{"type":"rpc","id":9,"method":"echo"}`)
	if m := next(t, c2, 5*time.Second); m.Type != wire.TypeError || m.Code != wire.CodeNotAvailable || string(m.ID) != "9" {
		t.Fatalf("rpc without hook: %+v", m)
	}
}

func TestHookSubscribeAllowDenyData(t *testing.T) {
	be := newBackend(t, func(_ string, req map[string]any) (int, string) {
		switch req["topic"] {
		case "open":
			return 200, `{"result":{}}`
		case "with-data":
			return 200, `{"result":{"data":{"welcome":"to the room","mode":"` + req["mode"].(string) + `"}}}`
		}
		return 200, `{"error":{"message":"members only"}}`
	})
	s := startServer(t, "-push-interval", "0", "-proxy-subscribe", be.url("/subscribe"))
	c := hookDial(t, s)
	send(t, c, `{"type":"sub","id":1,"topic":"open"}`)
	if m := next(t, c, 5*time.Second); m.Type != wire.TypeSubscribed || m.Topic != "open" || m.Data != nil || string(m.ID) != "1" {
		t.Fatalf("allowed: %+v", m)
	}
	send(t, c, `{"type":"sub","id":2,"topic":"with-data"}`)
	if m := next(t, c, 5*time.Second); m.Type != wire.TypeSubscribed || string(m.Data) != `{"welcome":"to the room","mode":"stream"}` {
		t.Fatalf("allowed with data: %+v", m)
	}
	send(t, c, `{"type":"sub","id":3,"topic":"vip"}`)
	if m := next(t, c, 5*time.Second); m.Type != wire.TypeError || m.Code != wire.CodeForbidden || m.Reason != "members only" || string(m.ID) != "3" {
		t.Fatalf("denied: %+v", m)
	}
	// The denied sub made no subscription: a publish reaches only "open".
	if req := be.lastRequest("/subscribe"); req["topic"] != "vip" || req["client"] == "" {
		t.Fatalf("hook request %v", req)
	}
	publishAPI(t, s, "vip", `1`)
	publishAPI(t, s, "open", `2`)
	if m := next(t, c, 5*time.Second); m.Type != wire.TypeMsg || m.Topic != "open" {
		t.Fatalf("after deny: %+v, want the msg on open", m)
	}
}

// publishAPI publishes through the admin API.
func publishAPI(t *testing.T, s *testServer, topic, data string) {
	t.Helper()
	resp, err := http.Post(s.admin+"/v1/publish", "application/json", strings.NewReader(`{"topic":"`+topic+`","data":`+data+`}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("publish %s: HTTP %d", topic, resp.StatusCode)
	}
}

func TestHookPublishRefuseRewrite(t *testing.T) {
	be := newBackend(t, func(_ string, req map[string]any) (int, string) {
		switch req["topic"] {
		case "chat":
			d, _ := json.Marshal(map[string]any{"text": req["data"], "by": req["client"]})
			return 200, `{"result":{"data":` + string(d) + `}}`
		case "raw":
			return 200, `{"result":{}}`
		}
		return 200, `{"error":{"code":"read_only","message":"this topic is read-only"}}`
	})
	s := startServer(t, "-push-interval", "0", "-client-publish", "-proxy-publish", be.url("/publish"))
	sub := hookDial(t, s)
	send(t, sub, `{"type":"sub","topic":"chat"}`)
	nextOf(t, sub, wire.TypeSubscribed, 5*time.Second)
	send(t, sub, `{"type":"sub","topic":"raw"}`)
	nextOf(t, sub, wire.TypeSubscribed, 5*time.Second)
	send(t, sub, `{"type":"sub","topic":"news"}`)
	nextOf(t, sub, wire.TypeSubscribed, 5*time.Second)

	pub := dial(t, s.ws)
	w := next(t, pub, 5*time.Second)
	send(t, pub, `{"type":"pub","id":1,"topic":"news","data":"fake"}`)
	if m := next(t, pub, 5*time.Second); m.Type != wire.TypeError || m.Code != "read_only" || m.Reason != "this topic is read-only" || string(m.ID) != "1" {
		t.Fatalf("refused: %+v", m)
	}
	send(t, pub, `{"type":"pub","id":2,"topic":"chat","data":"hi"}`)
	if m := next(t, pub, 5*time.Second); m.Type != wire.TypePublished || string(m.ID) != "2" {
		t.Fatalf("rewritten pub: %+v", m)
	}
	if m := next(t, sub, 5*time.Second); m.Type != wire.TypeMsg || m.Topic != "chat" || string(m.Data) != `{"by":`+string(w.ID)+`,"text":"hi"}` {
		t.Fatalf("subscriber got %+v, want the rewritten data", m)
	}
	send(t, pub, `{"type":"pub","id":3,"topic":"raw","data":[1]}`)
	nextOf(t, pub, wire.TypePublished, 5*time.Second)
	if m := next(t, sub, 5*time.Second); m.Type != wire.TypeMsg || m.Topic != "raw" || string(m.Data) != `[1]` {
		t.Fatalf("subscriber got %+v, want the data as published", m)
	}
}

func TestHookConnectAcceptRefuse(t *testing.T) {
	be := newBackend(t, func(_ string, req map[string]any) (int, string) {
		h, _ := req["headers"].(map[string]any)
		q, _ := req["query"].(map[string]any)
		switch {
		case q["token"] == "good" && h["Authorization"] == "Bearer abc":
			return 200, `{"result":{"user":"alice","topics":["news.*"],"expire_at":0}}`
		case q["token"] == "slowgood":
			time.Sleep(300 * time.Millisecond)
			return 200, `{"result":{"user":"bob","topics":[">"]}}`
		case q["token"] == "expired":
			return 200, `{"error":{"status":401,"message":"session expired"}}`
		}
		return 200, `{"error":{"message":"who are you?"}}`
	})
	s := startServer(t, "-push-interval", "100ms", "-proxy-connect", be.url("/connect"))
	hdr := http.Header{"Authorization": {"Bearer abc"}, "X-Secret": {"not for the backend"}}
	c, _, err := websocket.DefaultDialer.Dial(s.ws+"?token=good&other=1", hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m := next(t, c, 5*time.Second); m.Type != wire.TypeWelcome {
		t.Fatalf("accepted: %+v, want welcome", m)
	}
	req := be.lastRequest("/connect")
	h, _ := req["headers"].(map[string]any)
	q, _ := req["query"].(map[string]any)
	ra, _ := req["remote_addr"].(string)
	if h["X-Secret"] != nil || q["other"] != nil || req["client"] == "" || !strings.HasPrefix(ra, "127.0.0.1:") {
		t.Fatalf("connect request %v: passes what is not allow-listed, or lacks client/remote_addr", req)
	}
	// The backend's user and patterns apply.
	eventually(t, 3*time.Second, "users 1 in /v1/stats", func() bool { u, _ := stats(t, s)["users"].(float64); return u == 1 })
	send(t, c, `{"type":"sub","id":1,"topic":"news.eu"}`)
	if m := nextOf(t, c, wire.TypeSubscribed, 5*time.Second); m.Topic != "news.eu" {
		t.Fatalf("%+v", m)
	}
	send(t, c, `{"type":"sub","id":2,"topic":"sport.eu"}`)
	if m := nextOf(t, c, wire.TypeError, 5*time.Second); m.Code != wire.CodeForbidden {
		t.Fatalf("sub outside the backend's patterns: %+v", m)
	}

	// Refused: the close code is 4000 + the backend's status.
	for token, want := range map[string]struct {
		code   int
		reason string
	}{"expired": {4401, "session expired"}, "bad": {4403, "who are you?"}} {
		c, _, err := websocket.DefaultDialer.Dial(s.ws+"?token="+token, nil)
		if err != nil {
			t.Fatal(err)
		}
		code, reason := closeCode(t, c, 5*time.Second)
		c.Close()
		if code != want.code || reason != want.reason {
			t.Fatalf("token %s: close %d %q, want %d %q", token, code, reason, want.code, want.reason)
		}
	}

	// Messages sent before the answer wait for it, in order, after the
	// welcome; no tick comes before the welcome.
	c3, _, err := websocket.DefaultDialer.Dial(s.ws+"?token=slowgood", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	send(t, c3, `{"type":"ping","id":1}`)
	send(t, c3, `{"type":"sub","id":2,"topic":"x"}`)
	var got []string
	for len(got) < 3 {
		m := next(t, c3, 5*time.Second)
		if m.Type != wire.TypeTick || len(got) == 0 {
			got = append(got, m.Type)
		}
	}
	if strings.Join(got, " ") != "welcome pong subscribed" {
		t.Fatalf("pending connect: %v, want welcome pong subscribed", got)
	}
}

// A pending connect counts against the per-IP cap: an unauthenticated peer
// holds no more than before.
func TestHookConnectPendingCountsPerIP(t *testing.T) {
	release := make(chan struct{})
	be := newBackend(t, func(string, map[string]any) (int, string) {
		<-release
		return 200, `{"result":{"user":"u"}}`
	})
	defer close(release)
	s := startServer(t, "-max-conns-per-ip", "2", "-proxy-connect", be.url("/connect"), "-proxy-timeout", "5s")
	for i := 0; i < 2; i++ {
		dial(t, s.ws) // pending: the backend has not answered
	}
	_, resp, err := websocket.DefaultDialer.Dial(s.ws, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third pending connect from one IP: %v %v, want HTTP 429", err, resp)
	}
}

func TestHookConnectTimeoutCloses4504(t *testing.T) {
	be := newBackend(t, func(string, map[string]any) (int, string) {
		time.Sleep(2 * time.Second)
		return 200, `{"result":{"user":"u"}}`
	})
	s := startServer(t, "-proxy-connect", be.url("/connect"), "-proxy-timeout", "300ms")
	c := dial(t, s.ws)
	if code, _ := closeCode(t, c, 5*time.Second); code != 4504 {
		t.Fatalf("close %d, want 4504", code)
	}
}

// Bad hook settings stop the server at start, with the reason.
func TestHookConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"-proxy-rpc", "ftp://127.0.0.1/x"}, "want http:// or https://"},
		{[]string{"-proxy-connect", "http://127.0.0.1:1/c", "-proxy-timeout", "20s"}, "may not exceed the handshake timeout"},
		{[]string{"-proxy-subscribe", "http://127.0.0.1:1/s", "-proxy-concurrency", "-1"}, "must be positive"},
	} {
		args := append([]string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, tc.flags...)
		cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
		if err == nil {
			var n *node
			if n, err = start(cfg); err == nil {
				n.shutdown(cfg)
			}
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.flags, err, tc.want)
		}
	}
}
