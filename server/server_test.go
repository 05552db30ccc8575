package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

func TestWelcomeFirstThenContiguousHonestTicks(t *testing.T) {
	s := startServer(t, "-push-interval", "100ms")
	c := dial(t, s.ws)
	w := next(t, c, 2*time.Second)
	if w.Type != wire.TypeWelcome || w.IntervalMS != 100 || w.Text != "Welcome to the server!" || len(w.ID) < 3 {
		t.Fatalf("first frame %+v, want the welcome", w)
	}
	var prevDue int64
	for want := uint64(1); want <= 8; want++ {
		m := next(t, c, 2*time.Second)
		recv := time.Now().UnixNano()
		if m.Type != wire.TypeTick || m.Seq != want {
			t.Fatalf("frame %+v, want tick seq %d", m, want)
		}
		if lag := time.Duration(recv - m.Due); lag < 0 || lag > 500*time.Millisecond {
			t.Fatalf("tick %d received %v after its due time", want, lag)
		}
		if prevDue != 0 && m.Due-prevDue != int64(100*time.Millisecond) {
			t.Fatalf("tick %d due %v after the previous one, want exactly 100ms", want, time.Duration(m.Due-prevDue))
		}
		prevDue = m.Due
	}
}

func TestPushTextAndDisabledPushes(t *testing.T) {
	s := startServer(t, "-push-interval", "50ms", "-push-text", `hi "there"`, "-welcome", "hello")
	c := dial(t, s.ws)
	if w := next(t, c, 2*time.Second); w.Text != "hello" {
		t.Fatalf("welcome %+v", w)
	}
	if m := next(t, c, 2*time.Second); m.Type != wire.TypeTick || m.Text != `hi "there"` {
		t.Fatalf("tick %+v, want text", m)
	}

	off := startServer(t, "-push-interval", "0")
	c2 := dial(t, off.ws)
	if w := next(t, c2, 2*time.Second); w.IntervalMS != 0 {
		t.Fatalf("welcome %+v, want interval_ms 0", w)
	}
	if m, err := tryNext(c2, 300*time.Millisecond); err == nil {
		t.Fatalf("got %+v with pushes disabled", m)
	}
}

func TestPingPongAndBadInputKeepTheConnection(t *testing.T) {
	s := startServer(t, "-push-interval", "100ms")
	c := dial(t, s.ws)
	next(t, c, 2*time.Second) // welcome
	bad := map[string]string{
		`{"type":`:                     "malformed JSON",
		`[1,2]`:                        "JSON object",
		`"ping"`:                       "JSON object",
		`{"id":1}`:                     `missing field "type"`,
		`{"type":"dance","id":1}`:      "unknown type",
		`{"type":"ping"}`:              `missing field "id"`,
		`{"type":"ping","id":{"a":1}}`: "string or a number",
		`{"type":7}`:                   "wrong type",
	}
	for in, want := range bad {
		send(t, c, in)
		m := nextOf(t, c, wire.TypeError, 2*time.Second)
		if m.Code != wire.CodeBadRequest || !strings.Contains(m.Reason, want) {
			t.Errorf("%s: got %+v, want bad_request mentioning %q", in, m, want)
		}
		send(t, c, `{"type":"ping","id":"ok"}`) // ends the run of bad messages
		nextOf(t, c, wire.TypePong, 2*time.Second)
	}
	send(t, c, `{"type":"pub","topic":"x","data":1}`)
	if m := nextOf(t, c, wire.TypeError, 2*time.Second); m.Code != wire.CodeForbidden {
		t.Fatalf("pub with -client-publish off: %+v", m)
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if m := nextOf(t, c, wire.TypeError, 2*time.Second); !strings.Contains(m.Reason, "binary") {
		t.Fatalf("binary: %+v", m)
	}
	send(t, c, `{"type":"ping","id":42}`)
	if m := nextOf(t, c, wire.TypePong, 2*time.Second); string(m.ID) != "42" {
		t.Fatalf("pong %+v, want id 42", m)
	}
	if m := nextOf(t, c, wire.TypeTick, 2*time.Second); m.Seq == 0 {
		t.Fatalf("no tick after bad input: %+v", m)
	}
}

func TestTooManyBadMessagesClose1008(t *testing.T) {
	s := startServer(t, "-max-bad-messages", "3")
	c := dial(t, s.ws)
	next(t, c, 2*time.Second)
	for i := 0; i < 3; i++ {
		send(t, c, "nope")
	}
	if code, _ := closeCode(t, c, 3*time.Second); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
}

func TestOversizedMessageClose1009(t *testing.T) {
	s := startServer(t, "-max-message-bytes", "100")
	c := dial(t, s.ws)
	next(t, c, 2*time.Second)
	send(t, c, `{"type":"ping","id":"`+strings.Repeat("x", 50)+`"}`) // 72 bytes: fine
	nextOf(t, c, wire.TypePong, 2*time.Second)
	send(t, c, `{"type":"ping","id":"`+strings.Repeat("x", 200)+`"}`)
	if code, _ := closeCode(t, c, 3*time.Second); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	eventually(t, 3*time.Second, "too_big counted", func() bool {
		return stats(t, s)["closed"].(map[string]any)["too_big"].(float64) == 1
	})
}

func TestMaxConns503(t *testing.T) {
	s := startServer(t, "-max-conns", "2")
	a, b := dial(t, s.ws), dial(t, s.ws)
	next(t, a, 2*time.Second)
	next(t, b, 2*time.Second)
	_, resp, err := websocket.DefaultDialer.Dial(s.ws, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third dial: err %v, resp %v; want HTTP 503", err, resp)
	}
	a.Close()
	// The slot frees once the server has seen the close.
	eventually(t, 3*time.Second, "a slot frees after a client leaves", func() bool {
		c, _, err := websocket.DefaultDialer.Dial(s.ws, nil)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func TestKeepalivePingsAndIdleTimeout(t *testing.T) {
	s := startServer(t, "-push-interval", "0", "-ping-interval", "100ms", "-idle-timeout", "600ms")
	// A client that answers pings (gorilla does, while reading) stays.
	live := dial(t, s.ws)
	pings := make(chan struct{}, 100)
	live.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return live.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	// A client that sends nothing at all is closed.
	silent := dial(t, s.ws)
	silent.SetPingHandler(func(string) error { return nil })
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := tryNext(live, 5*time.Second); err != nil {
				done <- err
				return
			}
		}
	}()
	if code, text := closeCode(t, silent, 5*time.Second); code != websocket.CloseGoingAway || text != "idle timeout" {
		t.Fatalf("silent client closed with %d %q, want 1001 idle timeout", code, text)
	}
	deadline := time.After(5 * time.Second)
	for n := 0; n < 8; n++ { // 8 pings = 800 ms, past the idle timeout
		select {
		case <-pings:
		case err := <-done:
			t.Fatalf("live client ended: %v", err)
		case <-deadline:
			t.Fatalf("only %d pings", n)
		}
	}
	if got := stats(t, s)["closed"].(map[string]any)["idle"].(float64); got != 1 {
		t.Fatalf("idle closes = %v, want 1", got)
	}
}

func TestAdminEndpoints(t *testing.T) {
	s := startServer(t, "-push-interval", "50ms")
	c := dial(t, s.ws)
	next(t, c, 2*time.Second)
	next(t, c, 2*time.Second)
	if code, body := get(t, s.admin+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("healthz %d %s", code, body)
	}
	_, body := get(t, s.admin+"/metrics")
	for _, want := range []string{"wspush_connections 1", "wspush_connections_accepted_total 1", `wspush_connections_closed_total{reason="slow_consumer"}`,
		"wspush_frames_in_total", "wspush_bytes_out_total", "wspush_tick_lag_seconds_bucket", `wspush_upgrade_failures_total{reason="max_conns"}`,
		"wspush_pushes_total", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	st := stats(t, s)
	if st["connections"].(float64) != 1 || st["pushes"].(float64) < 1 {
		t.Fatalf("stats %v", st)
	}
	if code, _ := get(t, s.admin+"/debug/pprof/"); code != 200 {
		t.Fatalf("pprof %d", code)
	}
	// A plain HTTP GET of /ws is a bad handshake, counted.
	if code, _ := get(t, strings.Replace(s.ws, "ws://", "http://", 1)); code != http.StatusBadRequest {
		t.Fatalf("plain GET /ws: %d, want 400", code)
	}
	b, _ := json.Marshal(stats(t, s)["upgrade_failures"])
	if !strings.Contains(string(b), `"bad_handshake":1`) {
		t.Fatalf("upgrade failures %s", b)
	}
	if code, body := get(t, "http://"+s.n.gw.Addr().String()+"/"); code != 200 || !strings.Contains(body, "<title>wspush demo</title>") {
		t.Fatalf("demo page: %d", code)
	}
}

func TestConfigFromEnvAndBadValues(t *testing.T) {
	env := map[string]string{"WSPUSH_PUSH_INTERVAL": "2s", "WSPUSH_MAX_CONNS": "7", "WSPUSH_MAX_WRITE_BUFFER": "1MiB"}
	cfg, err := parseConfig([]string{"-max-conns", "9"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hub.PushInterval != 2*time.Second || cfg.Gateway.MaxConns != 9 || cfg.Hub.MaxUnsent != 1<<20 {
		t.Fatalf("config %+v", cfg)
	}
	for _, args := range [][]string{{"-push-interval", "x"}, {"-push-interval", "1ms"}, {"-max-write-buffer", "12parsecs"},
		{"-profile", "everything"}, {"-max-conns", "-1"}, {"stray"}} {
		_, err := parseConfig(args, func(string) string { return "" }, io.Discard)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "wspush: ") {
			t.Errorf("%v: error %q, want one prefixed line", args, fmt.Sprint(err))
		}
	}
	if _, err := parseConfig(nil, func(k string) string {
		if k == "WSPUSH_IDLE_TIMEOUT" {
			return "soon"
		}
		return ""
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "WSPUSH_IDLE_TIMEOUT") {
		t.Errorf("bad env value: %v", err)
	}
}
