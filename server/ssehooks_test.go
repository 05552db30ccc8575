package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// Tests of the backend hooks on SSE streams (gateway/ssehooks.go), of the
// JWT with the connect hook, and of the breaker flags. The backend is a
// real net/http server (newBackend, hooks_test.go); SSE is read off plain
// sockets (openSSE, sse_test.go).

// sseSend sends GET url on a new socket and returns it without reading.
func sseSend(t *testing.T, url string, header ...string) net.Conn {
	t.Helper()
	host, path, _ := strings.Cut(strings.TrimPrefix(url, "http://"), "/")
	conn, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET /" + path + " HTTP/1.1\r\nHost: " + host + "\r\nAccept: text/event-stream\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	return conn
}

// silent checks that nothing arrives on conn for d.
func silent(t *testing.T, conn net.Conn, d time.Duration, what string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	var b [256]byte
	n, err := conn.Read(b[:])
	if n > 0 || !isTimeout(err) {
		t.Fatalf("%s: got %q (%v), want nothing for %v", what, b[:n], err, d)
	}
	_ = conn.SetReadDeadline(time.Time{})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// sseOn reads the response head off a socket sseSend opened and, for a
// 200, its events in the background.
func sseOn(t *testing.T, conn net.Conn, d time.Duration) *sseStream {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	st := &sseStream{t: t, conn: conn, status: resp.StatusCode, header: resp.Header,
		events: make(chan sseEvent, 1024), done: make(chan error, 1)}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		st.body = string(b)
		conn.Close()
		return st
	}
	_ = conn.SetReadDeadline(time.Time{})
	go st.read(br)
	return st
}

// first returns the first event after the retry field (comments skipped):
// nothing, not even a tick, may come before the welcome.
func (st *sseStream) first(d time.Duration) sseEvent {
	st.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-st.events:
			if !ok {
				st.t.Fatalf("stream ended: %v", <-st.done)
			}
			if !ev.comment && ev.retry == "" {
				return ev
			}
		case <-deadline:
			st.t.Fatalf("no event within %v", d)
		}
	}
}

// TestSSEHookConnect: /sse asks the connect hook (transport "sse", the
// allow-listed headers and query); its user, patterns and expiry apply;
// a refusal is the HTTP status with the message as body; a topic outside
// the backend's patterns is 403.
func TestSSEHookConnect(t *testing.T) {
	be := newBackend(t, func(_ string, req map[string]any) (int, string) {
		h, _ := req["headers"].(map[string]any)
		q, _ := req["query"].(map[string]any)
		switch {
		case h["Cookie"] == "sid=good":
			return 200, `{"result":{"user":"ann","topics":["news.*"]}}`
		case q["token"] == "soon":
			return 200, fmt.Sprintf(`{"result":{"user":"bob","topics":[">"],"expire_at":%d}}`, time.Now().Add(1500*time.Millisecond).Unix())
		case q["token"] == "expired":
			return 200, `{"error":{"status":401,"message":"session expired"}}`
		}
		return 200, `{"error":{"message":"who are you?"}}`
	})
	s := startServer(t, "-push-interval", "50ms", "-proxy-connect", be.url("/connect"))

	st := openSSE(t, s.sse("?topics=news.eu&other=1"), "Cookie: sid=good", "X-Secret: not for the backend")
	if st.status != 200 {
		t.Fatalf("accepted: %d %q", st.status, st.body)
	}
	if ev := st.first(2 * time.Second); ev.event != "welcome" {
		t.Fatalf("first event %+v, want welcome", ev)
	}
	st.next("subscribed", 2*time.Second)
	req := be.lastRequest("/connect")
	h, _ := req["headers"].(map[string]any)
	q, _ := req["query"].(map[string]any)
	if req["transport"] != "sse" || req["path"] != "/sse" || req["client"] == "" || h["X-Secret"] != nil || q["other"] != nil {
		t.Fatalf("connect request %v: want transport sse, path /sse, only allow-listed headers and query", req)
	}
	eventually(t, 3*time.Second, "users 1 in /v1/stats", func() bool { u, _ := stats(t, s)["users"].(float64); return u == 1 })
	publishAPI(t, s, "news.eu", `"hello"`)
	if m := jsonOf(t, st.next("msg", 2*time.Second).data); m["data"] != "hello" {
		t.Fatalf("msg %v", m)
	}

	// The backend's patterns: a topic outside them refuses the request.
	if st := openSSE(t, s.sse("?topics=news.eu,sport.eu"), "Cookie: sid=good"); st.status != 403 || !strings.Contains(st.body, "sport.eu") {
		t.Fatalf("topic outside the backend's patterns: %d %q, want 403", st.status, st.body)
	}
	// Refusals: the backend's status (403 by default) and message.
	for token, want := range map[string]struct {
		status int
		body   string
	}{"expired": {401, "session expired"}, "bad": {403, "who are you?"}} {
		st := openSSE(t, s.sse("?topics=a&token="+token))
		if st.status != want.status || strings.TrimSpace(st.body) != want.body {
			t.Fatalf("token %s: %d %q, want %d %q", token, st.status, st.body, want.status, want.body)
		}
	}
	// expire_at ends the stream as it closes a WebSocket: 1008 "token expired".
	exp := openSSE(t, s.sse("?token=soon"))
	if exp.status != 200 {
		t.Fatalf("expiring: %d %q", exp.status, exp.body)
	}
	c := jsonOf(t, exp.next("close", 4*time.Second).data)
	if c["code"] != 1008.0 || c["reason"] != "token expired" {
		t.Fatalf("close %v, want 1008 token expired", c)
	}
	exp.ended(2 * time.Second)
}

// TestSSEHookConnectPending: while the backend thinks, the stream gets
// nothing — no head, no tick, no message — and counts against the per-IP
// cap as a pending WebSocket does; the answer then starts it.
func TestSSEHookConnectPending(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	be := newBackend(t, func(string, map[string]any) (int, string) {
		<-release
		return 200, `{"result":{"user":"u","topics":[">"]}}`
	})
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	s := startServer(t, "-push-interval", "50ms", "-max-conns-per-ip", "2", "-proxy-connect", be.url("/connect"), "-proxy-timeout", "5s")
	a := sseSend(t, s.sse("?topics=a"))
	b := sseSend(t, s.sse("?topics=a"))
	eventually(t, 3*time.Second, "two connect calls", func() bool { return be.calls.Load() == 2 })
	if code, _, body := getPlain(t, s.sse("?topics=a")); code != http.StatusTooManyRequests {
		t.Fatalf("third pending stream from one IP: %d %q, want 429", code, body)
	}
	wantRefusalStream(t, "third pending stream from one IP, asking for a stream", openSSE(t, s.sse("?topics=a")), 4429) // sseedge_test.go
	if _, resp, err := websocket.DefaultDialer.Dial(s.ws, nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("WebSocket beside two pending streams: %v %v, want 429", err, resp)
	}
	publishAPI(t, s, "a", `1`)
	silent(t, a, 300*time.Millisecond, "pending stream (6 ticks and a message meanwhile)")
	free()
	for _, conn := range []net.Conn{a, b} {
		st := sseOn(t, conn, 5*time.Second)
		if st.status != 200 {
			t.Fatalf("after the answer: %d %q", st.status, st.body)
		}
		if ev := st.first(2 * time.Second); ev.event != "welcome" {
			t.Fatalf("first event %+v, want welcome", ev)
		}
		if sub := jsonOf(t, st.next("subscribed", 2*time.Second).data); sub["seq"] != 1.0 {
			t.Fatalf("subscribed %v: want the position after the message published while pending", sub)
		}
		st.next("tick", 2*time.Second)
	}
}

// TestSSEHookSubscribe: each topic of ?topics= goes through the subscribe
// hook in order: allowed ones are subscribed with the backend's data,
// denied ones get an error event with the topic as id, and the stream
// goes on. The user is the connect hook's.
func TestSSEHookSubscribe(t *testing.T) {
	var order []string
	var mu sync.Mutex
	be := newBackend(t, func(path string, req map[string]any) (int, string) {
		if path == "/connect" {
			return 200, `{"result":{"user":"ann","topics":[">"]}}`
		}
		topic, _ := req["topic"].(string)
		mu.Lock()
		order = append(order, topic+"/"+fmt.Sprint(req["user"])+"/"+fmt.Sprint(req["mode"]))
		mu.Unlock()
		switch topic {
		case "a":
			return 200, `{"result":{"data":{"members":3}}}`
		case "b":
			return 200, `{"error":{"message":"members only"}}`
		case "d":
			return 200, `garbage`
		}
		return 200, `{"result":{}}`
	})
	for _, connect := range []bool{false, true} {
		flags := []string{"-push-interval", "0", "-proxy-subscribe", be.url("/subscribe")}
		if connect {
			flags = append(flags, "-proxy-connect", be.url("/connect"))
		}
		s := startServer(t, flags...)
		mu.Lock()
		order = nil
		mu.Unlock()
		st := openSSE(t, s.sse("?topics=a,b,c,d"))
		if st.status != 200 {
			t.Fatalf("connect hook %v: %d %q", connect, st.status, st.body)
		}
		if ev := st.first(2 * time.Second); ev.event != "welcome" {
			t.Fatalf("first event %+v, want welcome", ev)
		}
		var got []string
		for len(got) < 4 {
			ev := st.first(3 * time.Second)
			m := jsonOf(t, ev.data)
			switch ev.event {
			case "subscribed":
				got = append(got, fmt.Sprintf("subscribed %v %v", m["topic"], m["data"]))
			case "error":
				got = append(got, fmt.Sprintf("error %v %v %v", m["id"], m["code"], m["reason"]))
			default:
				t.Fatalf("unexpected %+v", ev)
			}
		}
		want := "subscribed a map[members:3]|error b forbidden members only|subscribed c <nil>|" +
			"error d bad_gateway the application's subscribe hook gave an invalid answer: bad backend response: answer is not JSON"
		if strings.Join(got, "|") != want {
			t.Fatalf("connect hook %v:\n got %s\nwant %s", connect, strings.Join(got, "|"), want)
		}
		user := ""
		if connect {
			user = "ann"
		}
		mu.Lock()
		calls := strings.Join(order, " ")
		mu.Unlock()
		if w := fmt.Sprintf("a/%[1]s/stream b/%[1]s/stream c/%[1]s/stream d/%[1]s/stream", user); calls != w {
			t.Fatalf("subscribe calls %q, want %q", calls, w)
		}
		publishAPI(t, s, "b", `"not for you"`)
		publishAPI(t, s, "c", `"yes"`)
		if m := jsonOf(t, st.next("msg", 2*time.Second).data); m["topic"] != "c" {
			t.Fatalf("msg %v, want c's only", m)
		}
	}
}

// TestSSEHookSlowBackend: a connect hook that does not answer in time
// refuses with 504 within the timeout; other streams, through the same
// hook, connect and get their ticks meanwhile.
func TestSSEHookSlowBackend(t *testing.T) {
	be := newBackend(t, func(_ string, req map[string]any) (int, string) {
		if q, _ := req["query"].(map[string]any); q["token"] == "slow" {
			time.Sleep(3 * time.Second)
		}
		return 200, `{"result":{"user":"u"}}`
	})
	s := startServer(t, "-push-interval", "100ms", "-proxy-connect", be.url("/connect"), "-proxy-timeout", "500ms",
		"-proxy-breaker-failures", "100")
	const slow, fast = 10, 10
	type refusal struct {
		status int
		body   string
		took   time.Duration // from its request
		err    error
	}
	refusals := make(chan refusal, slow)
	for i := 0; i < slow; i++ {
		sent := time.Now()
		conn := sseSend(t, s.sse("?token=slow"))
		go func() {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				refusals <- refusal{err: err}
				return
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			refusals <- refusal{status: resp.StatusCode, body: string(b), took: time.Since(sent)}
		}()
	}
	var ticks atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < fast; i++ {
		st := openSSE(t, s.sse("?token=fast"))
		if st.status != 200 {
			t.Fatalf("fast stream beside slow ones: %d %q", st.status, st.body)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 5; n++ {
				select {
				case ev, ok := <-st.events:
					if !ok {
						return
					}
					if ev.event == "tick" {
						ticks.Add(1)
					} else {
						n--
					}
				case <-time.After(5 * time.Second):
					return
				}
			}
		}()
	}
	for i := 0; i < slow; i++ {
		r := <-refusals
		// The answer comes at the timeout (500ms), give or take the
		// machine's load.
		if r.err != nil || r.status != http.StatusGatewayTimeout || !strings.Contains(r.body, "did not answer in time") ||
			r.took < 450*time.Millisecond || r.took > 3*time.Second {
			t.Fatalf("slow stream: %d %q after %v (%v), want 504 at the 500ms timeout", r.status, r.body, r.took, r.err)
		}
	}
	wg.Wait()
	if n := ticks.Load(); n != fast*5 {
		t.Fatalf("fast streams got %d ticks while the backend hung, want %d", n, fast*5)
	}
	if v := metric(t, s, `wspush_hook_calls_total{hook="connect",result="timeout"}`); v != slow {
		t.Fatalf("connect timeouts %v, want %d", v, slow)
	}
}

// TestSSEHookBadBackend: garbage, a bad status and a backend that is down
// refuse with 502 and 503, with a reason; the breaker opens after
// -proxy-breaker-failures.
func TestSSEHookBadBackend(t *testing.T) {
	be := newBackend(t, func(_ string, req map[string]any) (int, string) {
		q, _ := req["query"].(map[string]any)
		switch q["token"] {
		case "garbage":
			return 200, `<html>`
		case "500":
			return 500, `{"result":{"user":"u"}}`
		case "status":
			return 200, `{"error":{"status":302}}`
		case "nouser":
			return 200, `{"result":{"topics":[">"]}}`
		}
		return 200, `{"result":{"user":"u"}}`
	})
	s := startServer(t, "-push-interval", "0", "-proxy-connect", be.url("/connect"), "-proxy-breaker-failures", "100")
	for token, want := range map[string]string{
		"garbage": "answer is not JSON",
		"500":     "invalid answer",
		"status":  "status must be 400 to 599",
		"nouser":  "invalid answer",
	} {
		st := openSSE(t, s.sse("?token="+token))
		if st.status != http.StatusBadGateway || !strings.Contains(st.body, want) {
			t.Errorf("%s: %d %q, want 502 about %q", token, st.status, st.body, want)
		}
	}
	if st := openSSE(t, s.sse("?token=ok")); st.status != 200 {
		t.Fatalf("good answer after bad ones: %d %q", st.status, st.body)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: connections are refused
	d := startServer(t, "-push-interval", "0", "-proxy-connect", "http://"+addr+"/connect", "-proxy-breaker-failures", "2")
	for i, want := range []string{"refused", "refused", "breaker open"} {
		st := openSSE(t, d.sse(""))
		if st.status != http.StatusServiceUnavailable || !strings.Contains(st.body, want) || st.header.Get("Retry-After") == "" {
			t.Fatalf("down backend, stream %d: %d %q %v, want 503 about %q with Retry-After", i, st.status, st.body, st.header, want)
		}
	}
	if n := stats(t, d)["connections"]; n != 0.0 {
		t.Fatalf("connections %v after refusals, want 0", n)
	}
}

// TestHookJWTAndConnect: with -jwt-secret and -proxy-connect both on, a
// request with a valid token is admitted by the token alone (the hook is
// not asked), one with a bad token gets 401, and one without a token goes
// to the hook — over WebSocket and SSE.
func TestHookJWTAndConnect(t *testing.T) {
	be := newBackend(t, func(_ string, req map[string]any) (int, string) {
		if h, _ := req["headers"].(map[string]any); h["Cookie"] == "sid=bob" {
			return 200, `{"result":{"user":"bob","topics":["b"]}}`
		}
		return 200, `{"error":{"status":401,"message":"log in"}}`
	})
	s := startServer(t, "-push-interval", "0", "-jwt-secret", testSecret, "-proxy-connect", be.url("/connect"))
	tok := hsToken(t, tokenOpts{sub: "ann", exp: time.Now().Add(time.Hour), topics: []string{"a"}})

	// A valid token: the token's grant, no hook call.
	c, status := dialAuth(t, s.ws, tok, nil)
	if status != 0 {
		t.Fatalf("ws with a token: HTTP %d", status)
	}
	if m := next(t, c, 3*time.Second); m.Type != wire.TypeWelcome {
		t.Fatalf("ws with a token: %+v", m)
	}
	send(t, c, `{"type":"sub","id":1,"topic":"b"}`)
	if m := next(t, c, 3*time.Second); m.Type != wire.TypeError || m.Code != wire.CodeForbidden {
		t.Fatalf("ws token outside its patterns: %+v", m)
	}
	st := openSSE(t, s.sse("?topics=a&token="+tok))
	if st.status != 200 {
		t.Fatalf("sse with a token: %d %q", st.status, st.body)
	}
	st.next("subscribed", 2*time.Second)
	if n := be.calls.Load(); n != 0 {
		t.Fatalf("the hook was called %d times for token holders", n)
	}
	// A bad token: 401, no hook call.
	if _, status := dialAuth(t, s.ws, tok+"x", nil); status != 401 {
		t.Fatalf("ws with a bad token: HTTP %d, want 401", status)
	}
	if st := openSSE(t, s.sse("?token="+tok+"x")); st.status != 401 {
		t.Fatalf("sse with a bad token: %d", st.status)
	}
	if n := be.calls.Load(); n != 0 {
		t.Fatalf("the hook was called %d times for bad tokens", n)
	}
	// No token: the hook decides.
	c2, _, err := websocket.DefaultDialer.Dial(s.ws, http.Header{"Cookie": {"sid=bob"}})
	if err != nil {
		t.Fatalf("ws without a token: %v", err)
	}
	defer c2.Close()
	if m := next(t, c2, 3*time.Second); m.Type != wire.TypeWelcome {
		t.Fatalf("ws without a token: %+v", m)
	}
	if req := be.lastRequest("/connect"); req["transport"] != "websocket" || req["user"] != nil {
		t.Fatalf("connect request %v: want transport websocket and no user", req)
	}
	send(t, c2, `{"type":"sub","id":1,"topic":"b"}`)
	if m := next(t, c2, 3*time.Second); m.Type != wire.TypeSubscribed {
		t.Fatalf("ws hook user in its patterns: %+v", m)
	}
	c3, _, err := websocket.DefaultDialer.Dial(s.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, reason := closeCode(t, c3, 3*time.Second); code != 4401 || reason != "log in" {
		t.Fatalf("ws refused by the hook: %d %q", code, reason)
	}
	c3.Close()
	if st := openSSE(t, s.sse("?topics=b"), "Cookie: sid=bob"); st.status != 200 {
		t.Fatalf("sse without a token: %d %q", st.status, st.body)
	} else {
		st.next("subscribed", 2*time.Second)
	}
	if st := openSSE(t, s.sse("")); st.status != 401 || strings.TrimSpace(st.body) != "log in" {
		t.Fatalf("sse refused by the hook: %d %q", st.status, st.body)
	}
	eventually(t, 3*time.Second, "users ann and bob", func() bool { u, _ := stats(t, s)["users"].(float64); return u == 2 })
}

// TestHookBreakerFlags: -proxy-breaker-failures and -proxy-breaker-open
// change the breaker: 2 bad answers open it (not 5), and it lets a probe
// through after 300ms (not 5s).
func TestHookBreakerFlags(t *testing.T) {
	var good atomic.Bool
	be := newBackend(t, func(string, map[string]any) (int, string) {
		if good.Load() {
			return 200, `{"result":"ok"}`
		}
		return 200, `garbage`
	})
	s := startServer(t, "-push-interval", "0", "-proxy-rpc", be.url("/rpc"),
		"-proxy-breaker-failures", "2", "-proxy-breaker-open", "300ms")
	c := hookDial(t, s)
	rpc := func(id int) wire.ServerMsg {
		send(t, c, fmt.Sprintf(`{"type":"rpc","id":%d,"method":"m"}`, id))
		return next(t, c, 3*time.Second)
	}
	for id, want := range []string{wire.CodeBadGateway, wire.CodeBadGateway, wire.CodeUnavailable} {
		if m := rpc(id); m.Type != wire.TypeError || m.Code != want {
			t.Fatalf("rpc %d: %+v, want %s", id, m, want)
		}
	}
	if v := metric(t, s, `wspush_hook_breaker_state{hook="rpc"}`); v != 2 {
		t.Fatalf("breaker state %v, want 2 (open)", v)
	}
	good.Store(true)
	start := time.Now()
	id := 10
	eventually(t, 3*time.Second, "rpc answered after the 300ms open time", func() bool {
		id++
		return rpc(id).Type == wire.TypeRPCResult
	})
	if took := time.Since(start); took > 3500*time.Millisecond { // the default would be 5s
		t.Fatalf("breaker closed after %v, want about 300ms", took)
	}
}

// TestHookSubscribeAnswerAfterClose: a subscribe hook's answer that comes
// after its client closed does not subscribe the closed client (the
// topic's count stays 0), over WebSocket and SSE.
func TestHookSubscribeAnswerAfterClose(t *testing.T) {
	be := newBackend(t, func(string, map[string]any) (int, string) {
		time.Sleep(400 * time.Millisecond)
		return 200, `{"result":{}}`
	})
	s := startServer(t, "-push-interval", "0", "-proxy-subscribe", be.url("/subscribe"))
	c := hookDial(t, s)
	send(t, c, `{"type":"sub","id":1,"topic":"late.ws"}`)
	conn := sseSend(t, s.sse("?topics=late.sse"))
	eventually(t, 3*time.Second, "two subscribe calls", func() bool { return be.calls.Load() == 2 })
	c.Close()
	conn.Close()
	eventually(t, 3*time.Second, "connections 0", func() bool { return stats(t, s)["connections"] == 0.0 })
	time.Sleep(600 * time.Millisecond) // the answers arrive meanwhile (400ms after the calls)
	for _, topic := range []string{"late.ws", "late.sse"} {
		_, body := get(t, s.admin+"/v1/presence/"+topic)
		if jsonOf(t, body)["local"] != 0.0 {
			t.Errorf("%s after its only subscriber closed: %s, want local 0", topic, body)
		}
	}
}
