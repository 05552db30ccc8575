package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// sseEvent is one event (or comment) read off an SSE stream.
type sseEvent struct {
	event, id, data string
	retry           string
	comment         bool
}

// sseStream is an SSE client over a plain socket: the test sees the bytes
// as EventSource would.
type sseStream struct {
	t      *testing.T
	conn   net.Conn
	status int
	header http.Header
	body   string // a refused request's body
	events chan sseEvent
	done   chan error // the stream's end
}

// sseURL is the gateway's /sse address with query q.
func (s *testServer) sse(q string) string {
	return "http://" + s.n.gw.Addr().String() + "/sse" + q
}

// openSSE sends GET url with the extra header lines and reads the
// response head; for a 200 it reads events in the background.
func openSSE(t *testing.T, url string, header ...string) *sseStream {
	t.Helper()
	addr := strings.TrimPrefix(url, "http://")
	host, path, _ := strings.Cut(addr, "/")
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
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
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

// read parses events until the stream ends (bounded: the test's cleanup
// closes the socket).
func (st *sseStream) read(br *bufio.Reader) {
	var ev sseEvent
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			st.done <- err
			close(st.events)
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data != nil || ev.comment || ev.retry != "" {
				ev.data = strings.Join(data, "\n")
				st.events <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			ev.comment = true
		default:
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "event":
				ev.event = value
			case "id":
				ev.id = value
			case "data":
				data = append(data, value)
			case "retry":
				ev.retry = value
			}
		}
	}
}

// next returns the next event that is not a comment, tick or retry
// (unless asked for by type), failing after d.
func (st *sseStream) next(typ string, d time.Duration) sseEvent {
	st.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-st.events:
			if !ok {
				st.t.Fatalf("stream ended waiting for %q: %v", typ, <-st.done)
			}
			switch {
			case typ == ":" && ev.comment, typ == "retry" && ev.retry != "", ev.event == typ:
				return ev
			}
		case <-deadline:
			st.t.Fatalf("no %q event within %v", typ, d)
		}
	}
}

// ended waits for the server to end the stream.
func (st *sseStream) ended(d time.Duration) {
	st.t.Helper()
	select {
	case <-st.done:
	case <-time.After(d):
		st.t.Fatalf("stream still open after %v", d)
	}
}

func jsonOf(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("event data %q: %v", s, err)
	}
	return m
}

// TestSSEStream: welcome, ticks, topic messages, broadcasts and heartbeat
// comments arrive as events with the WebSocket JSON; the idle timeout
// does not close a client that never sends.
func TestSSEStream(t *testing.T) {
	s := startServer(t, "-push-interval", "100ms", "-ping-interval", "100ms", "-idle-timeout", "300ms")
	st := openSSE(t, s.sse("?topics=news,other"))
	if st.status != 200 {
		t.Fatalf("status %d: %s", st.status, st.body)
	}
	for h, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := st.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if st.header.Get("Content-Length") != "" || st.header.Get("Transfer-Encoding") != "" {
		t.Errorf("stream is not close-delimited: %v", st.header)
	}
	if r := st.next("retry", 2*time.Second); r.retry < "1000" || len(r.retry) != 4 {
		t.Errorf("retry %q, want 1000-4999 ms", r.retry)
	}
	w := jsonOf(t, st.next("welcome", 2*time.Second).data)
	if w["type"] != "welcome" || w["interval_ms"] != 100.0 {
		t.Errorf("welcome %v", w)
	}
	sub := st.next("subscribed", 2*time.Second)
	epoch := jsonOf(t, sub.data)["epoch"].(string)
	if sub.id != "news:"+epoch+":0" {
		t.Errorf("subscribed id %q, want news:%s:0", sub.id, epoch)
	}
	st.next("subscribed", 2*time.Second)
	tick := jsonOf(t, st.next("tick", 2*time.Second).data)
	if tick["seq"] != 1.0 {
		t.Errorf("first tick %v", tick)
	}
	publish(t, s, "news", `{"headline":"hi",`+"\n"+`"n":1}`) // a line break inside the JSON
	m := st.next("msg", 2*time.Second)
	mj := jsonOf(t, m.data)
	if mj["topic"] != "news" || mj["seq"] != 1.0 || mj["data"].(map[string]any)["n"] != 1.0 {
		t.Errorf("msg %v", mj)
	}
	if !strings.HasPrefix(m.id, "news:"+epoch+":1,other:") || !strings.HasSuffix(m.id, ":0") {
		t.Errorf("msg id %q: want news at 1 and other at 0", m.id)
	}
	if code, body := post(t, s.admin+"/v1/broadcast", `{"data":{"alert":"all"}}`); code != 200 {
		t.Fatalf("broadcast: %d %s", code, body)
	}
	b := st.next("msg", 2*time.Second)
	if bj := jsonOf(t, b.data); bj["topic"] != "" || b.id != "" {
		t.Errorf("broadcast %v with id %q", bj, b.id)
	}
	st.next(":", 2*time.Second)
	// Several idle timeouts later the stream is still served.
	first := jsonOf(t, st.next("tick", 2*time.Second).data)["seq"].(float64)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for seq := first; seq < first+10; {
		if time.Now().After(deadline) {
			t.Fatalf("ticks stopped at %v (idle timeout 300ms)", seq)
		}
		seq = jsonOf(t, st.next("tick", 2*time.Second).data)["seq"].(float64)
	}
	if n := stats(t, s)["connections"]; n != 1.0 {
		t.Errorf("connections %v, want 1", n)
	}
}

// TestSSEResume: Last-Event-ID replays exactly what was missed in every
// topic; an unknown epoch gets history_gone; since+epoch in the query do
// the same for a first connection.
func TestSSEResume(t *testing.T) {
	s := startServer(t, "-push-interval", "0")
	st := openSSE(t, s.sse("?topics=a,b"))
	epochA := jsonOf(t, st.next("subscribed", 2*time.Second).data)["epoch"].(string)
	st.next("subscribed", 2*time.Second)
	publish(t, s, "a", "1")
	publish(t, s, "b", "1")
	st.next("msg", 2*time.Second)
	id := st.next("msg", 2*time.Second).id // a at 1, b at 1
	st.conn.Close()
	publish(t, s, "a", "2")
	publish(t, s, "b", "2")
	publish(t, s, "a", "3")

	re := openSSE(t, s.sse("?topics=a,b"), "Last-Event-ID: "+id)
	got := map[string][]float64{}
	var lastID string
	for range 3 {
		ev := re.next("msg", 2*time.Second)
		m := jsonOf(t, ev.data)
		got[m["topic"].(string)] = append(got[m["topic"].(string)], m["seq"].(float64))
		lastID = ev.id
	}
	if fmt.Sprint(got["a"]) != "[2 3]" || fmt.Sprint(got["b"]) != "[2]" {
		t.Errorf("replayed %v, want a [2 3] and b [2]", got)
	}
	publish(t, s, "b", "3")
	live := re.next("msg", 2*time.Second)
	if m := jsonOf(t, live.data); m["topic"] != "b" || m["seq"] != 3.0 {
		t.Errorf("live %v", m)
	}
	select {
	case ev := <-re.events:
		if ev.event == "msg" {
			t.Errorf("a duplicate: %+v", ev)
		}
	case <-time.After(200 * time.Millisecond):
	}
	if !strings.Contains(lastID, "a:") || !strings.Contains(live.id, ":3") {
		t.Errorf("ids %q then %q", lastID, live.id)
	}

	gone := openSSE(t, s.sse("?topics=a"), "Last-Event-ID: a:0000000000000000:1")
	if sub := jsonOf(t, gone.next("subscribed", 2*time.Second).data); sub["history_gone"] != true {
		t.Errorf("subscribed %v, want history_gone", sub)
	}

	q := openSSE(t, s.sse("?topics=a&since=1&epoch="+epochA))
	for _, want := range []float64{2, 3} {
		if m := jsonOf(t, q.next("msg", 2*time.Second).data); m["seq"] != want {
			t.Errorf("since=1: got %v, want seq %v", m, want)
		}
	}
}

// TestSSERefused: a bad query gets 400 with a clear body, a token is
// required with JWT on (401), and the connection cap holds (503).
func TestSSERefused(t *testing.T) {
	s := startServer(t, "-push-interval", "0", "-max-conns", "1")
	for q, want := range map[string]string{
		"?topics=a%20b":             "topic",
		"?mode=fast":                "mode",
		"?topics=a&since=3":         "epoch",
		"?topics=a&since=x":         "since",
		"?topics=" + manyTopics(65): "topics",
	} {
		st := openSSE(t, s.sse(q))
		if st.status != 400 || !strings.Contains(st.body, want) {
			t.Errorf("%s: %d %q, want 400 about %s", q, st.status, st.body, want)
		}
	}
	if st := openSSE(t, s.sse("?topics=a"), "Last-Event-ID: garbage"); st.status != 400 {
		t.Errorf("bad Last-Event-ID: %d %q", st.status, st.body)
	}
	first := openSSE(t, s.sse("?topics=a"))
	first.next("subscribed", 2*time.Second)
	if code, _, body := getPlain(t, s.sse("?topics=a")); code != 503 {
		t.Errorf("over -max-conns: %d %q, want 503", code, body)
	}
	wantRefusalStream(t, "over -max-conns, asking for a stream", openSSE(t, s.sse("?topics=a")), 1013) // sseedge_test.go

	a := startServer(t, "-jwt-secret", testSecret, "-push-interval", "0")
	if st := openSSE(t, a.sse("?topics=a")); st.status != 401 {
		t.Errorf("no token: %d %q, want 401", st.status, st.body)
	}
	tok := hsToken(t, tokenOpts{sub: "ann", exp: time.Now().Add(time.Hour), topics: []string{"a"}})
	if st := openSSE(t, a.sse("?topics=b&token="+tok)); st.status != 403 {
		t.Errorf("topic outside the token: %d %q, want 403", st.status, st.body)
	}
	ok := openSSE(t, a.sse("?topics=a"), "Authorization: Bearer "+tok)
	if ok.status != 200 {
		t.Fatalf("with a token: %d %q", ok.status, ok.body)
	}
	ok.next("subscribed", 2*time.Second)
}

// TestSSEDrain: shutdown closes SSE clients too, with a close event.
func TestSSEDrain(t *testing.T) {
	s := startServer(t, "-push-interval", "0")
	st := openSSE(t, s.sse("?topics=a"))
	st.next("subscribed", 2*time.Second)
	go s.n.shutdown(s.cfg)
	if c := jsonOf(t, st.next("close", 3*time.Second).data); c["code"] != 1001.0 {
		t.Errorf("close %v", c)
	}
	st.ended(3 * time.Second)
}

// TestSSESlowConsumer: a client that stops reading is dropped at the
// write-buffer cap, like a WebSocket client.
func TestSSESlowConsumer(t *testing.T) {
	s := startServer(t, "-push-interval", "0", "-max-write-buffer", "64KiB", "-max-publish-bytes", "16KiB")
	// A client that never reads its stream.
	conn, err := net.Dial("tcp", s.n.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /sse?topics=a HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "the client connected", func() bool { return stats(t, s)["connections"] == 1.0 })
	big := `"` + strings.Repeat("x", 15000) + `"`
	eventually(t, 10*time.Second, "the slow client dropped", func() bool {
		for range 20 {
			code, _ := post(t, s.admin+"/v1/publish", `{"topic":"a","data":`+big+`}`)
			if code != 200 {
				break
			}
		}
		return stats(t, s)["connections"] == 0.0
	})
	if n := stats(t, s)["closed"].(map[string]any)["slow_consumer"]; n != 1.0 {
		t.Errorf("closed as slow: %v, want 1 (%v)", n, stats(t, s)["closed"])
	}
}

// TestSSECurl: curl -N reads the stream.
func TestSSECurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	s := startServer(t, "-push-interval", "100ms")
	out, _ := exec.Command(curl, "-sN", "--max-time", "1", s.sse("?topics=news")).Output()
	for _, want := range []string{"event: welcome\n", "event: subscribed\nid: news:", "event: tick\ndata: {\"type\":\"tick\"", "retry: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("curl output lacks %q:\n%s", want, out)
		}
	}
}

func manyTopics(n int) string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprintf("t%d", i)
	}
	return strings.Join(l, ",")
}

// TestSSETLS: the stream works over TLS too (the session reads through
// nbio's TLS connection; writes are encrypted).
func TestSSETLS(t *testing.T) {
	certPath, keyPath, pool := selfSigned(t)
	s := startServer(t, "-tls-cert", certPath, "-tls-key", keyPath, "-push-interval", "100ms")
	conn, err := tls.Dial("tcp", s.n.gw.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /sse?topics=a HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response %v, %v", resp, err)
	}
	var got strings.Builder
	for !strings.Contains(got.String(), "event: tick\n") {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got.String(), err)
		}
		got.WriteString(line)
	}
	if !strings.Contains(got.String(), "event: subscribed\nid: a:") {
		t.Errorf("stream %q", got.String())
	}
}
