package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// roundTrip sends a ping and expects its pong as the very next frame:
// nothing else (no msg, no close) was queued for c before it.
func roundTrip(t *testing.T, c *websocket.Conn, id int) {
	t.Helper()
	send(t, c, fmt.Sprintf(`{"type":"ping","id":%d}`, id))
	if m := next(t, c, 5*time.Second); m.Type != wire.TypePong || string(m.ID) != fmt.Sprint(id) {
		t.Fatalf("got %+v, want pong %d", m, id)
	}
}

// TestServerAPIDisconnectUser: POST /v1/users/{user}/disconnect closes
// exactly that user's connections with the code and reason given, behind
// the admin token, and refuses bad codes and reasons; the webhook reports
// the closes with reason "admin".
func TestServerAPIDisconnectUser(t *testing.T) {
	r := newReceiver(t, nil)
	s := startWithConfig(t, func(c *Config) { c.Webhook.MaxDelay = 10 * time.Millisecond }, "-jwt-secret", testSecret,
		"-push-interval", "0", "-admin-token", "admin-secret", "-webhook-url", r.srv.URL, "-webhook-secret", webhookSecret,
		"-webhook-events", "connection_closed")
	ann1, id1 := dialUser(t, s, "ann")
	ann2, id2 := dialUser(t, s, "ann")
	bob, _ := dialUser(t, s, "bob")

	call := func(path, body, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.admin+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, jsonBody(resp))
		return resp.StatusCode, b.String()
	}
	if code, _ := call("/v1/users/ann/disconnect", `{"code":4001}`, ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", code)
	}
	for _, body := range []string{
		`{"code":1000}`, `{"code":3000}`, `{"code":5000}`, `{"code":-1}`, `{"code":4001,"extra":1}`, `{"code":"4001"}`, `[]`,
		`{"code":4001,"reason":"` + strings.Repeat("x", 124) + `"}`,
	} {
		if code, resp := call("/v1/users/ann/disconnect", body, "admin-secret"); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", body, code, resp)
		}
	}
	if code, _ := call("/v1/users/nobody/disconnect", `{"code":4001}`, "admin-secret"); code != http.StatusNotFound {
		t.Errorf("unknown user: %d, want 404", code)
	}
	roundTrip(t, ann1, 1) // the refused requests closed nothing

	code, resp := call("/v1/users/ann/disconnect", `{"code":4001,"reason":"banned"}`, "admin-secret")
	if code != 200 || !strings.Contains(resp, `"disconnected":2`) {
		t.Fatalf("disconnect: %d %s", code, resp)
	}
	for _, c := range []*websocket.Conn{ann1, ann2} {
		if code, text := closeCode(t, c, 5*time.Second); code != 4001 || text != "banned" {
			t.Errorf("ann's connection closed with %d %q, want 4001 banned", code, text)
		}
	}
	roundTrip(t, bob, 2) // bob's connection is untouched
	eventually(t, 5*time.Second, "the closes in the webhook", func() bool { return len(r.events()) == 2 })
	seen := map[string]bool{}
	for _, e := range r.events() {
		if e.User != "ann" || e.Reason != "admin" {
			t.Errorf("event %+v, want ann closed by admin", e)
		}
		seen[e.Client] = true
	}
	if !seen[id1] || !seen[id2] {
		t.Errorf("events for %v, want %s and %s", seen, id1, id2)
	}
	// 1008 is allowed too; the default is 4000.
	if code, _ := call("/v1/users/bob/disconnect", "", "admin-secret"); code != 200 {
		t.Fatalf("bob: %d", code)
	}
	if code, text := closeCode(t, bob, 5*time.Second); code != 4000 || text != "disconnected by the server" {
		t.Errorf("bob closed with %d %q, want the default 4000", code, text)
	}

	// Without authentication there are no users: 400, clearly.
	plain := startServer(t, "-push-interval", "0")
	code, resp = post(t, plain.admin+"/v1/users/ann/disconnect", `{"code":1008}`)
	if code != 400 || !strings.Contains(resp, "authentication is off") {
		t.Errorf("without auth: %d %s", code, resp)
	}
}

func jsonBody(resp *http.Response) string {
	var v any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	b, _ := json.Marshal(v)
	return string(b)
}

// TestServerAPIUnsubscribeUser: POST /v1/users/{user}/unsubscribe ends
// that user's subscriptions to the topic (each connection gets
// "unsubscribed") and leaves other users' alone.
func TestServerAPIUnsubscribeUser(t *testing.T) {
	s := startServer(t, "-jwt-secret", testSecret, "-push-interval", "0")
	ann1, _ := dialUser(t, s, "ann")
	ann2, _ := dialUser(t, s, "ann")
	bob, _ := dialUser(t, s, "bob")
	for _, c := range []*websocket.Conn{ann1, ann2, bob} {
		subscribe(t, c, `{"type":"sub","topic":"news"}`)
	}
	subscribe(t, ann1, `{"type":"sub","topic":"other"}`)

	for body, want := range map[string]int{`{}`: 400, `{"topic":"bad topic"}`: 400, ``: 400, `{"topic":"news","x":1}`: 400} {
		if code, resp := post(t, s.admin+"/v1/users/ann/unsubscribe", body); code != want {
			t.Errorf("%q: %d %s, want %d", body, code, resp, want)
		}
	}
	if code, _ := post(t, s.admin+"/v1/users/nobody/unsubscribe", `{"topic":"news"}`); code != 404 {
		t.Errorf("unknown user: %d, want 404", code)
	}
	code, resp := post(t, s.admin+"/v1/users/ann/unsubscribe", `{"topic":"news"}`)
	if code != 200 || !strings.Contains(resp, `"connections": 2`) || !strings.Contains(resp, `"unsubscribed": 2`) {
		t.Fatalf("unsubscribe: %d %s", code, resp)
	}
	for _, c := range []*websocket.Conn{ann1, ann2} {
		if m := next(t, c, 5*time.Second); m.Type != wire.TypeUnsubscribed || m.Topic != "news" {
			t.Fatalf("got %+v, want unsubscribed news", m)
		}
	}
	publish(t, s, "news", `1`)
	publish(t, s, "other", `2`)
	if m := next(t, bob, 5*time.Second); m.Type != wire.TypeMsg || m.Topic != "news" {
		t.Fatalf("bob got %+v, want the news msg", m)
	}
	if m := next(t, ann1, 5*time.Second); m.Type != wire.TypeMsg || m.Topic != "other" {
		t.Fatalf("ann got %+v, want only the other msg", m)
	}
	roundTrip(t, ann2, 3) // no news msg for ann
	// Again: the user is connected but no longer subscribed.
	code, resp = post(t, s.admin+"/v1/users/ann/unsubscribe", `{"topic":"news"}`)
	if code != 200 || !strings.Contains(resp, `"unsubscribed": 0`) {
		t.Fatalf("second unsubscribe: %d %s", code, resp)
	}
}

// TestServerAPIHistory: GET /v1/history/{topic} with since and limit
// pages through what is kept; since older than that, or another epoch,
// is history_gone.
func TestServerAPIHistory(t *testing.T) {
	s := startServer(t, "-push-interval", "0", "-history-size", "5", "-admin-token", "tok")
	type page struct {
		Epoch       string `json:"epoch"`
		LastSeq     uint64 `json:"last_seq"`
		HistoryGone bool   `json:"history_gone"`
		More        bool   `json:"more"`
		Messages    []struct {
			Seq  uint64          `json:"seq"`
			TS   int64           `json:"ts"`
			Data json.RawMessage `json:"data"`
		} `json:"messages"`
	}
	read := func(query string, wantCode int) page {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.admin+"/v1/history/"+query, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p page
		_ = json.NewDecoder(resp.Body).Decode(&p)
		if resp.StatusCode != wantCode {
			t.Fatalf("%s: HTTP %d, want %d", query, resp.StatusCode, wantCode)
		}
		return p
	}
	seqs := func(p page) string {
		var b strings.Builder
		for _, m := range p.Messages {
			var d bytes.Buffer
			_ = json.Compact(&d, m.Data)
			fmt.Fprintf(&b, "%d=%s ", m.Seq, d.Bytes())
		}
		return strings.TrimSpace(b.String())
	}
	req, _ := http.NewRequest(http.MethodGet, s.admin+"/v1/history/a/b", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v %v", resp, err)
	}
	read("a/b", 404)
	for i := 1; i <= 8; i++ {
		req, _ := http.NewRequest(http.MethodPost, s.admin+"/v1/publish", strings.NewReader(fmt.Sprintf(`{"topic":"a/b","data":{"n":%d}}`, i)))
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("publish %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
	all := read("a/b", 200) // kept: 4..8
	if seqs(all) != `4={"n":4} 5={"n":5} 6={"n":6} 7={"n":7} 8={"n":8}` || all.LastSeq != 8 || all.HistoryGone || all.More || all.Epoch == "" {
		t.Fatalf("all: %+v", all)
	}
	if ts := all.Messages[0].TS; time.Since(time.Unix(0, ts)).Abs() > time.Minute {
		t.Errorf("ts %d is not Unix ns of now", ts)
	}
	if p := read("a/b?since=4&limit=2", 200); seqs(p) != `5={"n":5} 6={"n":6}` || !p.More || p.HistoryGone {
		t.Errorf("since 4 limit 2: %+v", p)
	}
	if p := read("a/b?since=6&limit=2&epoch="+all.Epoch, 200); seqs(p) != `7={"n":7} 8={"n":8}` || p.More || p.HistoryGone {
		t.Errorf("since 6: %+v", p)
	}
	if p := read("a/b?since=8", 200); len(p.Messages) != 0 || p.HistoryGone {
		t.Errorf("since 8: %+v", p)
	}
	if p := read("a/b?since=3", 200); seqs(p) != `4={"n":4} 5={"n":5} 6={"n":6} 7={"n":7} 8={"n":8}` || p.HistoryGone {
		t.Errorf("since 3 (4 is the oldest kept): %+v", p)
	}
	for _, q := range []string{"a/b?since=2", "a/b?since=0", "a/b?since=9", "a/b?since=6&epoch=0000"} {
		if p := read(q, 200); !p.HistoryGone || seqs(p) != seqs(all) {
			t.Errorf("%s: %+v, want history_gone with every kept message", q, p)
		}
	}
	if p := read("a/b?since=1&limit=1", 200); !p.HistoryGone || seqs(p) != `4={"n":4}` || !p.More {
		t.Errorf("since 1 limit 1: %+v", p)
	}
	for _, q := range []string{"a/b?limit=0", "a/b?limit=1001", "a/b?since=x", "a/b?since=-1", "bad%20topic"} {
		read(q, 400)
	}
}
