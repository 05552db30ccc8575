package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/internal/webhook"
	"wspush/server/wire"
)

const webhookSecret = "webhook-test-secret-0123456789"

// receiver is a webhook receiver on 127.0.0.1:0 that checks each POST's
// signature itself (HMAC-SHA256 over timestamp "." body) and keeps the
// batches; status, when set, chooses the answer.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	batches  [][]webhook.Event
	attempts int
	bad      []string // signature or timestamp failures
	status   func(attempt int) int
}

func newReceiver(t *testing.T, status func(attempt int) int) *receiver {
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	ts, sig := req.Header.Get("Wspush-Timestamp"), req.Header.Get("Wspush-Signature")
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := "v1=" + hex.EncodeToString(mac.Sum(nil))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	sec, err := strconv.ParseInt(ts, 10, 64)
	switch {
	case !hmac.Equal([]byte(sig), []byte(want)):
		r.bad = append(r.bad, "signature "+sig)
	case err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute:
		r.bad = append(r.bad, "timestamp "+ts)
	case webhook.Verify(webhookSecret, ts, sig, body, time.Now(), time.Minute) != nil:
		r.bad = append(r.bad, "Verify refused a good signature")
	case webhook.Verify(webhookSecret, ts, sig, append(body, ' '), time.Now(), time.Minute) == nil:
		r.bad = append(r.bad, "Verify accepted a changed body")
	}
	if r.status != nil {
		if code := r.status(r.attempts); code != http.StatusOK {
			w.WriteHeader(code)
			return
		}
	}
	var b webhook.Body
	if err := json.Unmarshal(body, &b); err != nil {
		r.bad = append(r.bad, "body "+err.Error())
	}
	r.batches = append(r.batches, b.Events)
}

// events returns every event received, in order.
func (r *receiver) events() []webhook.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []webhook.Event
	for _, b := range r.batches {
		all = append(all, b...)
	}
	return all
}

// startWithConfig is startServer with a hook to change the parsed Config
// (for settings that have no flag).
func startWithConfig(t *testing.T, change func(*Config), flags ...string) *testServer {
	t.Helper()
	args := append([]string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, flags...)
	cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownTimeout = 3 * time.Second
	change(&cfg)
	n, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{cfg: cfg, n: n, ws: "ws://" + n.gw.Addr().String() + "/ws", admin: "http://" + n.admin.Addr().String()}
	t.Cleanup(func() { n.shutdown(cfg) })
	return s
}

func dialUser(t *testing.T, s *testServer, user string) (*websocket.Conn, string) {
	t.Helper()
	c, status := dialAuth(t, s.ws, hsToken(t, tokenOpts{sub: user, exp: time.Now().Add(time.Hour), topics: []string{">"}}), nil)
	if status != 0 {
		t.Fatalf("dial as %s: HTTP %d", user, status)
	}
	m := next(t, c, 5*time.Second)
	if m.Type != wire.TypeWelcome {
		t.Fatalf("first frame %+v, want welcome", m)
	}
	var id string
	_ = json.Unmarshal(m.ID, &id)
	return c, id
}

// whSample reads one sample from /metrics (-1 if absent).
func whSample(t *testing.T, s *testServer, name string) float64 {
	t.Helper()
	_, body := get(t, s.admin+"/metrics")
	return metricValue(body, name)
}

// TestWebhookEvents runs a scripted sequence and checks the events: topic
// occupied and vacated on the first and last local subscriber, connection
// closed with client id, user and reason; batched (at most -webhook-batch
// per POST, fewer POSTs than events) and correctly signed.
func TestWebhookEvents(t *testing.T) {
	r := newReceiver(t, nil)
	s := startServer(t, "-jwt-secret", testSecret, "-push-interval", "0", "-webhook-url", r.srv.URL,
		"-webhook-secret", webhookSecret, "-webhook-batch", "3")
	a, _ := dialUser(t, s, "ann")
	b, bid := dialUser(t, s, "bob")
	subscribe(t, a, `{"type":"sub","topic":"news"}`)   // occupied news
	subscribe(t, b, `{"type":"sub","topic":"news"}`)   // nothing
	subscribe(t, b, `{"type":"sub","topic":"sports"}`) // occupied sports
	send(t, a, `{"type":"unsub","topic":"news"}`)      // nothing: bob is still there
	nextOf(t, a, wire.TypeUnsubscribed, 5*time.Second)
	_ = b.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"))
	closeCode(t, b, 5*time.Second) // vacated news, vacated sports, bob closed

	want := []webhook.Event{
		{Kind: webhook.TopicOccupied, Topic: "news"},
		{Kind: webhook.TopicOccupied, Topic: "sports"},
		{Kind: webhook.TopicVacated, Topic: "news"},
		{Kind: webhook.TopicVacated, Topic: "sports"},
		{Kind: webhook.ConnectionClosed, Client: bid, User: "bob", Reason: "client"},
	}
	eventually(t, 5*time.Second, "5 events", func() bool { return len(r.events()) >= len(want) })
	got := r.events()
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
	}
	for i, e := range got {
		w := want[i]
		if e.Kind != w.Kind || e.Topic != w.Topic || e.Client != w.Client || e.User != w.User || e.Reason != w.Reason {
			t.Errorf("event %d = %+v, want %+v", i, e, w)
		}
		if i > 0 && e.ID != got[i-1].ID+1 {
			t.Errorf("event %d id %d after %d", i, e.ID, got[i-1].ID)
		}
		if time.Since(time.UnixMilli(e.TS)).Abs() > time.Minute {
			t.Errorf("event %d ts %d", i, e.TS)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Fatalf("receiver found: %v", r.bad)
	}
	if len(r.batches) >= len(want) {
		t.Errorf("%d POSTs for %d events: not batched", len(r.batches), len(want))
	}
	for _, b := range r.batches {
		if len(b) > 3 {
			t.Errorf("a batch of %d events, over -webhook-batch 3", len(b))
		}
	}
}

// TestWebhookReceiverDown: a receiver that answers 503 gets the batch
// MaxAttempts times (retried with backoff), then it is dropped and
// counted; so is a receiver that is not listening at all.
func TestWebhookReceiverDown(t *testing.T) {
	r := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	fast := func(c *Config) {
		c.Webhook.MaxAttempts, c.Webhook.Backoff, c.Webhook.MaxBackoff = 3, 20*time.Millisecond, 50*time.Millisecond
		c.Webhook.MaxDelay, c.Webhook.FlushTimeout = 20*time.Millisecond, 200*time.Millisecond
	}
	s := startWithConfig(t, fast, "-push-interval", "0", "-webhook-url", r.srv.URL, "-webhook-secret", webhookSecret)
	c := dial(t, s.ws)
	next(t, c, 5*time.Second)
	subscribe(t, c, `{"type":"sub","topic":"down"}`)
	dropped := `wspush_webhook_events_dropped_total{cause="retries_exhausted"}`
	eventually(t, 5*time.Second, "the event dropped after its retries", func() bool { return whSample(t, s, dropped) == 1 })
	r.mu.Lock()
	attempts := r.attempts
	r.mu.Unlock()
	if attempts != 3 {
		t.Errorf("receiver got %d attempts, want 3", attempts)
	}
	if v := whSample(t, s, "wspush_webhook_retries_total"); v != 2 {
		t.Errorf("retries %v, want 2", v)
	}
	if v := whSample(t, s, "wspush_webhook_events_sent_total"); v != 0 {
		t.Errorf("sent %v, want 0", v)
	}

	// Nobody listening: connection refused, retried, dropped.
	ln := httptest.NewServer(http.NotFoundHandler())
	url := ln.URL
	ln.Close()
	s2 := startWithConfig(t, fast, "-push-interval", "0", "-webhook-url", url, "-webhook-secret", webhookSecret)
	c2 := dial(t, s2.ws)
	next(t, c2, 5*time.Second)
	subscribe(t, c2, `{"type":"sub","topic":"down"}`)
	eventually(t, 5*time.Second, "the event dropped (refused)", func() bool { return whSample(t, s2, dropped) == 1 })
	if v := whSample(t, s2, "wspush_webhook_retries_total"); v != 2 {
		t.Errorf("retries %v, want 2", v)
	}
}

// TestWebhookSlowReceiver: a receiver that never answers holds the one
// delivery in flight; the events behind it fill the bounded buffer and the
// rest are dropped and counted, while the server's clients are unaffected:
// connections come and go at once and ticks keep their interval.
func TestWebhookSlowReceiver(t *testing.T) {
	release := make(chan struct{})
	var hits sync.WaitGroup
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		hits.Add(1)
		defer hits.Done()
		<-release
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs before slow.Close
	s := startWithConfig(t, func(c *Config) {
		c.Webhook.MaxDelay, c.Webhook.FlushTimeout = 10*time.Millisecond, 200*time.Millisecond
	}, "-push-interval", "100ms", "-webhook-url", slow.URL, "-webhook-secret", webhookSecret,
		"-webhook-batch", "2", "-webhook-buffer", "8")

	watcher := dial(t, s.ws)
	next(t, watcher, 5*time.Second)
	const churn = 200
	start := time.Now()
	for i := range churn {
		c, _, err := websocket.DefaultDialer.Dial(s.ws, nil)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		next(t, c, 5*time.Second) // welcome
		c.Close()
	}
	churnTook := time.Since(start)
	// Ticks to the watcher keep coming on time while the events back up.
	var prev time.Time
	worst := time.Duration(0)
	for range 10 {
		m := nextOf(t, watcher, wire.TypeTick, 5*time.Second)
		now := time.Now()
		if !prev.IsZero() && now.Sub(prev) > worst {
			worst = now.Sub(prev)
		}
		prev = now
		_ = m
	}
	t.Logf("%d connect+close in %v; worst tick gap %v", churn, churnTook, worst)
	if worst > 500*time.Millisecond {
		t.Errorf("worst tick gap %v with a 100 ms push interval", worst)
	}
	if churnTook > 10*time.Second {
		t.Errorf("%d connect+close took %v", churn, churnTook)
	}
	eventually(t, 5*time.Second, "closes counted", func() bool {
		return whSample(t, s, `wspush_connections_closed_total{reason="client"}`) == churn
	})
	full := whSample(t, s, `wspush_webhook_events_dropped_total{cause="buffer_full"}`)
	queued := whSample(t, s, "wspush_webhook_events_queued_total")
	t.Logf("queued %v, dropped buffer_full %v, queue gauge %v", queued, full, whSample(t, s, "wspush_webhook_queue"))
	// At most one batch in flight (2) plus the buffer (8) plus one batch
	// being filled (2) were taken; the rest were dropped.
	if queued > 12 || queued+full != churn {
		t.Errorf("queued %v + dropped %v, want at most 12 queued and %d in all", queued, full, churn)
	}
	if v := whSample(t, s, "wspush_webhook_queue"); v > 8 {
		t.Errorf("queue gauge %v over the buffer 8", v)
	}
}

// TestWebhookFlags: the flags' defaults and their validation.
func TestWebhookFlags(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		return parseConfig(append([]string{"-addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, io.Discard)
	}
	c, err := parse()
	if err != nil || c.Webhook.URL != "" || c.Webhook.Batch != webhook.DefaultBatch || c.Webhook.Buffer != webhook.DefaultBuffer || c.Webhook.Events != nil {
		t.Fatalf("defaults: %+v %v", c.Webhook, err)
	}
	c, err = parseConfig([]string{"-webhook-url", "http://127.0.0.1:9/hook", "-webhook-events", "topic_vacated,connection_closed"},
		func(k string) string {
			if k == "WSPUSH_WEBHOOK_SECRET" {
				return webhookSecret
			}
			return ""
		}, io.Discard)
	if err != nil || c.Webhook.Secret != webhookSecret || len(c.Webhook.Events) != 2 {
		t.Fatalf("from env: %+v %v", c.Webhook, err)
	}
	for _, args := range [][]string{
		{"-webhook-url", "http://127.0.0.1:9/"},                             // no secret
		{"-webhook-url", "http://127.0.0.1:9/", "-webhook-secret", "short"}, // short secret
		{"-webhook-url", "127.0.0.1:9", "-webhook-secret", webhookSecret},   // not a URL
		{"-webhook-secret", webhookSecret},                                  // no URL
		{"-webhook-events", "topic_occupied,typo"},                          // unknown kind
		{"-webhook-url", "http://h/", "-webhook-secret", webhookSecret, "-webhook-batch", "-1"},
		{"-webhook-url", "http://h/", "-webhook-secret", webhookSecret, "-webhook-buffer", "2000000"},
	} {
		if _, err := parse(args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// TestWebhookShutdownFlush: on shutdown the closes of the drained clients
// are still delivered (the sender stops after the gateway and flushes),
// well before the 1 s batch delay would have sent them.
func TestWebhookShutdownFlush(t *testing.T) {
	r := newReceiver(t, nil)
	s := startServer(t, "-push-interval", "0", "-webhook-url", r.srv.URL, "-webhook-secret", webhookSecret,
		"-webhook-events", "connection_closed")
	ids := map[string]bool{}
	for range 3 {
		c := dial(t, s.ws)
		var id string
		_ = json.Unmarshal(next(t, c, 5*time.Second).ID, &id)
		ids[id] = true
	}
	start := time.Now()
	s.n.shutdown(s.cfg)
	took := time.Since(start)
	got := r.events() // no waiting: shutdown has returned
	if len(got) != 3 {
		t.Fatalf("%d events after shutdown (took %v), want 3: %+v", len(got), took, got)
	}
	for _, e := range got {
		if !ids[e.Client] || e.Reason != "shutdown" {
			t.Errorf("event %+v, want a drained client with reason shutdown", e)
		}
	}
}
