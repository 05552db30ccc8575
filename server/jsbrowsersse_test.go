package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserJSClientSSE is TestBrowserJSClient on a network path that
// refuses WebSocket: the TCP proxy under the browser drops every
// connection that asks for an Upgrade, so the page's client (imported from
// GET /wspush.js, its modules from /wspush/) must fall back to SSE, using
// the browser's own EventSource. A published message arrives; after the
// proxy resets every connection the client opens a new stream resuming
// from its positions, and its handler gets every message exactly once, in
// order; a topic subscribed on SSE is served too. It skips when no
// chromium is installed, except on CI (findChromium).
func TestBrowserJSClientSSE(t *testing.T) {
	chromium := findChromium(t)
	s := startServer(t, "-push-interval", "200ms")
	p, err := newTCPProxy(strings.TrimSuffix(strings.TrimPrefix(s.ws, "ws://"), "/ws"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	p.blockUpgrades.Store(true)
	base := "http://" + p.addr()

	ctx, chromeOut := startChromium(t, chromium, 40*time.Second)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v\nchromium output:\n%s", chromium, err, chromeOut.String())
	}
	console := collectConsole(ctx)
	fail := func(format string, args ...any) {
		t.Helper()
		for _, m := range console() {
			t.Logf("console %s: %s", m.Type, m.Text)
		}
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.__t || null)`))
		t.Logf("page state: %s", state)
		t.Fatalf(format, args...)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/wspush.js")); err != nil {
		fail("loading %s/wspush.js: %v", base, err)
	}
	setup := `(async () => {
		const { Client } = await import("/wspush.js");
		const t = window.__t = { got: [], other: [], resumed: [], gone: [], errors: [], connected: [], transports: [] };
		const c = window.__c = new Client("ws://" + location.host + "/ws", { backoffBase: 100, backoffCap: 500, overloadMin: 100 });
		c.subscribe("web", { mode: "stream" }, (data, info) => t.got.push([info.seq, data.n]));
		c.on("connected", (e) => t.connected.push(e.transport));
		c.on("transport", (e) => t.transports.push(e.transport));
		c.on("resumed", (e) => t.resumed.push(e));
		c.on("gone", (e) => t.gone.push(e));
		c.on("error", (e) => t.errors.push(e.code + ": " + e.reason));
		return typeof EventSource + " " + typeof Client;
	})()`
	if typ, err := chromedp.Run(ctx, chromedp.Evaluate[string](setup, chromedp.EvalAwaitPromise)); err != nil || typ != "function function" {
		fail("importing /wspush.js: %q, %v", typ, err)
	}
	waitFor := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, pollEvery, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			fail("%s: %v", what, err)
		}
	}
	waitFor("open over SSE", `window.__c.state === "open" && window.__c.transport === "sse" && window.__c._subs.get("web")._state.known`)
	if n := p.blocked.Load(); n < 2 {
		t.Fatalf("the proxy dropped %d upgrades, want the client's WebSocket attempts (2)", n)
	}

	publishN := func(topic string, from, to int) {
		t.Helper()
		for n := from; n <= to; n++ {
			publish(t, s, topic, fmt.Sprintf(`{"n":%d}`, n)) // topics_test.go
		}
	}
	publishN("web", 1, 5)
	waitFor("messages 1-5 in the page", `window.__t.got.length === 5`)
	if n := p.cut(); n < 1 {
		t.Fatalf("cut %d connections, want the browser's", n)
	}
	publishN("web", 6, 15) // while the browser is away
	waitFor("resumed after the cut", `window.__t.resumed.length === 1 && window.__t.connected.length === 2`)
	publishN("web", 16, 20)
	waitFor("messages 1-20 in the page", `window.__t.got.length >= 20`)

	// A subscribe on SSE: a new stream with both topics and the position.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`void window.__c.subscribe("web2", (d, info) => window.__t.other.push(info.seq))`)); err != nil {
		fail("subscribing: %v", err)
	}
	waitFor("web2 subscribed", `window.__c._subs.get("web2")._state.known`)
	publishN("web2", 1, 2)
	publishN("web", 21, 22)
	waitFor("web2 and web 22", `window.__t.other.length === 2 && window.__t.got.length >= 22`)

	got, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Got        [][2]int `json:"got"`
		Other      []int    `json:"other"`
		Gone       []any    `json:"gone"`
		Errors     []string `json:"errors"`
		Connected  []string `json:"connected"`
		Transports []string `json:"transports"`
	}](`window.__t`))
	if err != nil {
		fail("reading the page: %v", err)
	}
	for i, m := range got.Got {
		if m[0] != i+1 || m[1] != i+1 {
			fail("message %d is seq %d n %d: want every message once, in order; got %v", i, m[0], m[1], got.Got)
		}
	}
	if len(got.Got) != 22 || len(got.Other) != 2 || len(got.Gone) != 0 || len(got.Errors) != 0 {
		fail("got %d messages, web2 %v, gone %v, errors %v", len(got.Got), got.Other, got.Gone, got.Errors)
	}
	if strings.Join(got.Connected, ",") != "sse,sse" || strings.Join(got.Transports, ",") != "sse" {
		fail("connected over %v, transports %v: want SSE throughout", got.Connected, got.Transports)
	}
	t.Logf("browser: WebSocket dropped %d times by the proxy; 22 messages over EventSource in order, one cut, resumed", p.blocked.Load())
	for _, m := range console() {
		if strings.HasSuffix(m.URL, "/favicon.ico") {
			continue
		}
		// The blocked WebSocket attempts are logged by the browser itself.
		if m.IsException() {
			fail("console %s at %s: %s", m.Type, m.URL, m.Text)
		}
	}
}
