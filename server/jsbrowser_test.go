package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserJSClient loads the JavaScript client from GET /wspush.js into
// a real headless Chromium, subscribes, and checks that a published message
// arrives, and that after the network path under the browser is cut (the
// test's TCP proxy resets every connection) the client reconnects, resumes,
// and its handler gets every message exactly once, in order. It skips when
// no chromium is installed, except on CI (CI=true), where it fails
// (findChromium).
func TestBrowserJSClient(t *testing.T) {
	chromium := findChromium(t)
	s := startServer(t, "-push-interval", "200ms")
	p, err := newTCPProxy(strings.TrimSuffix(strings.TrimPrefix(s.ws, "ws://"), "/ws"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	base := "http://" + p.addr()

	ctx, chromeOut := startChromium(t, chromium, 30*time.Second)
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

	// A document of the server's origin (the module itself, shown as
	// text), into which the module is imported as a page would.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/wspush.js")); err != nil {
		fail("loading %s/wspush.js: %v", base, err)
	}
	setup := `(async () => {
		const { Client } = await import("/wspush.js");
		const t = window.__t = { got: [], resumed: [], gone: [], errors: [], connected: 0, states: [] };
		const c = window.__c = new Client("ws://" + location.host + "/ws", { backoffBase: 100, backoffCap: 500 });
		c.subscribe("web", { mode: "stream" }, (data, info) => t.got.push([info.seq, data.n]));
		c.on("connected", () => t.connected++);
		c.on("resumed", (e) => t.resumed.push(e));
		c.on("gone", (e) => t.gone.push(e));
		c.on("error", (e) => t.errors.push(e.code + ": " + e.reason));
		c.on("state", (e) => t.states.push(e.state));
		return typeof Client;
	})()`
	if typ, err := chromedp.Run(ctx, chromedp.Evaluate[string](setup, chromedp.EvalAwaitPromise)); err != nil || typ != "function" {
		fail("importing /wspush.js: %q, %v", typ, err)
	}
	waitFor := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, pollEvery, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			fail("%s: %v", what, err)
		}
	}
	waitFor("subscribed", `window.__c.state === "open" && window.__c._subs.get("web")._state.known`)

	publish := func(from, to int) {
		t.Helper()
		for n := from; n <= to; n++ {
			publish(t, s, "web", fmt.Sprintf(`{"n":%d}`, n)) // topics_test.go
		}
	}
	publish(1, 5)
	waitFor("messages 1-5 in the page", `window.__t.got.length === 5`)

	if n := p.cut(); n < 1 {
		t.Fatalf("cut %d connections, want the browser's", n)
	}
	publish(6, 15) // while the browser is away
	waitFor("resumed after the cut", `window.__t.resumed.length === 1 && window.__t.connected === 2`)
	publish(16, 20)
	waitFor("messages 1-20 in the page", `window.__t.got.length >= 20`)

	got, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Got     [][2]int `json:"got"`
		Gone    []any    `json:"gone"`
		Errors  []string `json:"errors"`
		Resumed []struct {
			Replayed int `json:"replayed"`
		} `json:"resumed"`
	}](`window.__t`))
	if err != nil {
		fail("reading the page: %v", err)
	}
	for i, m := range got.Got {
		if m[0] != i+1 || m[1] != i+1 {
			fail("message %d is seq %d n %d: want every message once, in order; got %v", i, m[0], m[1], got.Got)
		}
	}
	if len(got.Got) != 20 || len(got.Gone) != 0 || len(got.Errors) != 0 {
		fail("got %d messages, gone %v, errors %v", len(got.Got), got.Gone, got.Errors)
	}
	t.Logf("browser: 20 messages in order, one cut, resumed with %d replayed", got.Resumed[0].Replayed)
	for _, m := range console() {
		if strings.HasSuffix(m.URL, "/favicon.ico") {
			continue // the browser asks for one by itself; there is none
		}
		if m.IsException() || m.Type == chromedp.ConsoleError {
			fail("console %s at %s: %s", m.Type, m.URL, m.Text)
		}
	}
}
