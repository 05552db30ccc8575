package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ssePage starts chromium on a document at pageURL and returns a fail
// func that logs the console and window.__t first, and a poll.
func ssePage(t *testing.T, pageURL string) (ctx context.Context, fail func(string, ...any), waitFor func(what, cond string)) {
	t.Helper()
	chromium := findChromium(t)
	ctx, chromeOut := startChromium(t, chromium, 40*time.Second)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v\nchromium output:\n%s", chromium, err, chromeOut.String())
	}
	console := collectConsole(ctx)
	fail = func(format string, args ...any) {
		t.Helper()
		for _, m := range console() {
			t.Logf("console %s: %s", m.Type, m.Text)
		}
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.__t || null)`))
		t.Logf("page state: %s", state)
		t.Fatalf(format, args...)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		fail("loading %s: %v", pageURL, err)
	}
	waitFor = func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, pollEvery, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			fail("%s: %v", what, err)
		}
	}
	return ctx, fail, waitFor
}

// openPageES opens window.__es on url in the page, counting opens, errors,
// close events (with their codes) and ticks in window.__t.
func openPageES(ctx context.Context, fail func(string, ...any), url string) {
	setup := `(() => {
		const t = window.__t = { opens: 0, errors: 0, closes: [], ticks: 0, states: [] };
		const es = window.__es = new EventSource(` + "`" + url + "`" + `, { withCredentials: true });
		es.onopen = () => t.opens++;
		es.onerror = () => { t.errors++; t.states.push(es.readyState); };
		es.addEventListener("close", (e) => t.closes.push(JSON.parse(e.data).code));
		es.addEventListener("tick", () => t.ticks++);
		return "ok";
	})()`
	if r, err := chromedp.Run(ctx, chromedp.Evaluate[string](setup)); err != nil || r != "ok" {
		fail("opening the EventSource: %q, %v", r, err)
	}
}

// TestBrowserSSEOverloadReconnects: a real EventSource refused because
// -max-conns is taken gets the refusal as a stream (a close event 1013)
// and so keeps reconnecting by itself; once a slot frees it is admitted
// and receives ticks. Before, the 503 made it give up for good.
func TestBrowserSSEOverloadReconnects(t *testing.T) {
	s := startServer(t, "-push-interval", "200ms", "-max-conns", "1")
	holder := openSSE(t, s.sse("?topics=a"))
	holder.next("subscribed", 2*time.Second)
	base := "http://" + s.n.gw.Addr().String()
	ctx, fail, waitFor := ssePage(t, base+"/wspush.js")
	openPageES(ctx, fail, "/sse?topics=web")
	waitFor("the refusal's close event, and EventSource reconnecting", `window.__t.closes.length >= 1 && window.__t.closes[0] === 1013 && window.__es.readyState !== 2`)
	holder.conn.Close() // the slot frees
	waitFor("admitted after the slot freed, with ticks", `window.__t.ticks >= 2`)
}

// TestBrowserSSECrossOrigin: a page on another origin that the server
// allows (-allowed-origins) reads the stream with EventSource, with
// credentials; a page on an origin it does not allow cannot.
func TestBrowserSSECrossOrigin(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><title>other origin</title>"))
	}))
	t.Cleanup(page.Close)
	s := startServer(t, "-push-interval", "200ms", "-allowed-origins", page.URL)
	ctx, fail, waitFor := ssePage(t, page.URL+"/")
	openPageES(ctx, fail, "http://"+s.n.gw.Addr().String()+"/sse?topics=web")
	waitFor("ticks on the cross-origin stream", `window.__t.ticks >= 2`)

	other := startServer(t, "-push-interval", "200ms", "-allowed-origins", "http://elsewhere.example")
	openPageES(ctx, fail, "http://"+other.n.gw.Addr().String()+"/sse?topics=web")
	waitFor("a refused origin's stream fails for good", `window.__es.readyState === 2 && window.__t.ticks === 0`)
}
