package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserSSE opens a real EventSource on /sse in headless Chromium,
// through a TCP proxy: ticks and topic messages arrive; after the proxy
// resets the connection, EventSource reconnects by itself with
// Last-Event-ID, and the messages published while it was away arrive, each
// exactly once, in order. It skips without chromium, except on CI
// (findChromium).
func TestBrowserSSE(t *testing.T) {
	chromium := findChromium(t)
	s := startServer(t, "-push-interval", "200ms")
	p, err := newTCPProxy(s.n.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
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
	// A document of the server's origin (the client module, shown as text).
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/wspush.js")); err != nil {
		fail("loading %s/wspush.js: %v", base, err)
	}
	setup := `(() => {
		const t = window.__t = { ticks: 0, got: [], opens: 0, errors: 0, ids: [] };
		const es = window.__es = new EventSource("/sse?topics=web");
		es.onopen = () => t.opens++;
		es.onerror = () => t.errors++;
		es.addEventListener("tick", () => t.ticks++);
		es.addEventListener("msg", (e) => { const m = JSON.parse(e.data); t.got.push([m.seq, m.data.n]); t.ids.push(e.lastEventId); });
		return "ok";
	})()`
	if r, err := chromedp.Run(ctx, chromedp.Evaluate[string](setup)); err != nil || r != "ok" {
		fail("opening the EventSource: %q, %v", r, err)
	}
	waitFor := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, pollEvery, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			fail("%s: %v", what, err)
		}
	}
	waitFor("open, with two ticks", `window.__t.opens === 1 && window.__t.ticks >= 2`)
	publishN := func(from, to int) {
		t.Helper()
		for n := from; n <= to; n++ {
			publish(t, s, "web", fmt.Sprintf(`{"n":%d}`, n)) // topics_test.go
		}
	}
	publishN(1, 5)
	waitFor("messages 1-5 in the page", `window.__t.got.length === 5`)

	if n := p.cut(); n < 1 {
		t.Fatalf("cut %d connections, want the browser's", n)
	}
	waitFor("the EventSource saw the cut", `window.__t.errors >= 1`)
	publishN(6, 15) // while it waits its retry (at least 1 s)
	waitFor("reconnected", `window.__t.opens === 2`)
	publishN(16, 20)
	waitFor("messages 1-20 in the page", `window.__t.got.length >= 20`)

	got, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Got [][2]int `json:"got"`
		IDs []string `json:"ids"`
	}](`window.__t`))
	if err != nil {
		fail("reading the page: %v", err)
	}
	for i, m := range got.Got {
		if m[0] != i+1 || m[1] != i+1 {
			fail("message %d is seq %d n %d: want every message once, in order; got %v", i, m[0], m[1], got.Got)
		}
	}
	if len(got.Got) != 20 || !strings.HasPrefix(got.IDs[19], "web:") || !strings.HasSuffix(got.IDs[19], ":20") {
		fail("got %d messages, last id %q", len(got.Got), got.IDs[len(got.IDs)-1])
	}
	for _, m := range console() {
		if strings.HasSuffix(m.URL, "/favicon.ico") {
			continue
		}
		if m.IsException() {
			fail("console %s at %s: %s", m.Type, m.URL, m.Text)
		}
	}
}
