package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"wspush/server/internal/gateway"
)

// TestBrowserDemoPage loads the demo page from an in-process server into a
// real headless Chromium and checks what a user sees: the page importing
// the JavaScript client from /wspush.js (it has no connection code of its
// own: everything below comes from the client's events); the welcome with
// the countdown to the first tick, pushes arriving live, a ping typed into
// the box answered by a pong; a topic subscribed with the button; the curl
// command the page shows, run as shown, publishing to it (and the message
// appearing); the connection cut (the page is loaded through a TCP proxy,
// frozen while messages are published, then cut: every connection reset at
// once), and the page showing the close, the reconnect attempt with its
// delay, and the resume ("resumed topic X: 2 replayed"); then a cut after
// more is published than the history keeps, and the page saying "history
// gone". It skips when no chromium is installed, except on CI (CI=true),
// where it fails; .ci/run installs one.
//
// Set WSPUSH_SCREENSHOT=/some/file.png to keep a screenshot of the page.
func TestBrowserDemoPage(t *testing.T) {
	chromium := findChromium(t)
	begin := time.Now()

	// The server: ticks every second (long enough to see the countdown),
	// a short history, an admin token (the curl command must send it) and
	// a short shutdown. The environment is ignored so that WSPUSH_*
	// variables of the shell cannot change what the page shows.
	const adminToken = "browser-admin-token"
	cfg, err := parseConfig([]string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-push-interval", "1s",
		"-history-size", "5", "-admin-token", adminToken}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownTimeout = 2 * time.Second
	n, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.shutdown(cfg) }) // runs last, after the browser is gone
	proxy, err := newTCPProxy(n.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.close)
	pageURL := "http://" + proxy.addr() + "/"
	adminURL := "http://" + n.admin.Addr().String()

	ctx, chromeOut := startChromium(t, chromium, 45*time.Second)
	console := func() []chromedp.ConsoleMessage { return nil }
	failed := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		t.Logf("page state:\n%s", pageState(ctx))
		for _, m := range console() {
			t.Logf("console %s at %s:%d: %s", m.Type, m.URL, m.Line+1, m.Text)
		}
		t.Logf("chromium output:\n%s", chromeOut.String())
		saveScreenshot(t, ctx)
		t.FailNow()
	}
	// waitFor polls until a log entry of class cls contains every one of
	// want, and returns its text.
	waitFor := func(cls string, d time.Duration, want ...string) string {
		t.Helper()
		text, err := chromedp.Run(ctx, chromedp.PollFunction[string](`(cls, want) => {
			for (const li of document.querySelectorAll("#log li." + cls)) {
				if (want.every(w => li.textContent.includes(w))) return li.textContent;
			}
			return "";
		}`, chromedp.WithPollingArgs(cls, want), pollEvery, chromedp.WithPollingTimeout(d)))
		if err != nil {
			failed("no li.%s with %q on the page within %v: %v", cls, want, d, err)
		}
		return strings.TrimSpace(text)
	}

	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v\nchromium output:\n%s", chromium, err, chromeOut.String())
	}
	console = collectConsole(ctx)

	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		failed("loading %s: %v", pageURL, err)
	}
	t.Logf("page loaded from %s after %v", pageURL, time.Since(begin).Round(time.Millisecond))

	// The page runs on the client: its module script imports /wspush.js.
	imported, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
		const e = performance.getEntriesByName(location.origin + "/wspush.js")[0];
		return e && (e.responseStatus === 200 || e.responseStatus === 304) ? e.name + " (" + e.responseStatus + ")" : "";
	})()`, pollEvery, chromedp.WithPollingTimeout(5*time.Second)))
	if err != nil {
		failed("the page did not load /wspush.js: %v", err)
	}
	t.Logf("the page imported %s", imported)

	// The welcome, with when the first tick comes, and a countdown to it.
	t.Logf("welcome shown: %s", waitFor("welcome", 5*time.Second, gateway.DefaultWelcome, "the first in "))
	countdown, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
		const t = document.getElementById("next").textContent;
		return /^(first|next) tick in [01]\.\d s$/.test(t) ? t : "";
	})()`, pollEvery, chromedp.WithPollingTimeout(3*time.Second)))
	if err != nil {
		failed("#next shows no countdown to the next tick (one per second): %v", err)
	}
	t.Logf("countdown: %s", countdown)

	// At least two pushes, each shown as it arrives.
	ticks, err := chromedp.Run(ctx, chromedp.Poll[int](`(() => {
		const n = parseInt(document.getElementById("ticks").textContent, 10);
		return n >= 2 && document.querySelectorAll("#log li.tick").length >= 2 ? n : 0;
	})()`, pollEvery, chromedp.WithPollingTimeout(5*time.Second)))
	if err != nil {
		failed("#ticks did not reach 2 with one push every second: %v", err)
	}
	t.Logf("pushes counted in #ticks: %d", ticks)

	// A ping typed into the box and sent with the button, answered live.
	id := "browser-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ping := fmt.Sprintf(`{"type":"ping","id":%q}`, id)
	if err := chromedp.Do(ctx,
		chromedp.Clear(chromedp.ID("msg")),
		chromedp.SendKeys(chromedp.ID("msg"), ping),
		chromedp.Click(chromedp.CSS(`#send button[type="submit"]`)),
	); err != nil {
		failed("typing %s into #msg and submitting: %v", ping, err)
	}
	t.Logf("sent %s, pong shown: %s", ping, waitFor("pong", 5*time.Second, strconv.Quote(id)))

	// A topic subscribed with the button.
	topic := "demo-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	if err := chromedp.Do(ctx,
		chromedp.Clear(chromedp.ID("topic")),
		chromedp.SendKeys(chromedp.ID("topic"), topic),
		chromedp.Click(chromedp.CSS(`#subscribe button[type="submit"]`)),
	); err != nil {
		failed("typing %s into #topic and subscribing: %v", topic, err)
	}
	t.Logf("subscribed: %s", waitFor("subscribed", 5*time.Second, "subscribed to "+topic))

	// The curl command the page shows, run as shown (with the token in the
	// variable it names), publishes to the topic; the message appears.
	curl, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("curl").textContent`))
	if err != nil {
		failed("reading #curl: %v", err)
	}
	if !strings.Contains(curl, adminURL+"/v1/publish") || !strings.Contains(curl, `"topic":"`+topic+`"`) {
		failed("#curl shows %q, want a publish of %s to %s/v1/publish", curl, topic, adminURL)
	}
	sh := exec.Command("sh", "-c", curl)
	sh.Env = append(os.Environ(), "WSPUSH_ADMIN_TOKEN="+adminToken)
	out, err := sh.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"seq": 1`) {
		failed("running the page's %q: %v, %s; want seq 1 published", curl, err, out)
	}
	t.Logf("ran %s", curl)
	waitFor("msg", 5*time.Second, topic+" #1: ", "hello from curl")
	publishWithToken(t, adminURL, adminToken, topic, 2)
	waitFor("msg", 5*time.Second, topic+" #2: ")

	// The path goes silent while two messages are published, then is cut:
	// the page sees the close, the client reconnects (after a random delay
	// under its first backoff ceiling, 1 s) and resumes the topic from the
	// history. Publishing while frozen, before the cut, keeps the client
	// from resubscribing before the messages exist, however short its
	// delay.
	if frozen := proxy.freeze(); frozen == 0 {
		failed("the proxy had no connection to freeze")
	}
	publishWithToken(t, adminURL, adminToken, topic, 3, 4)
	if cut := proxy.cut(); cut == 0 {
		failed("the proxy had no connection to cut")
	}
	t.Logf("after the cut: %s", waitFor("lost", 5*time.Second, "connection closed (1006)"))
	t.Logf("reconnect shown: %s", waitFor("lost", 5*time.Second, "reconnecting: attempt 1 in "))
	t.Logf("resume shown: %s", waitFor("resumed", 10*time.Second, "resumed topic "+topic+": 2 replayed"))
	waitFor("msg", time.Second, topic+" #3 (replayed)")
	waitFor("msg", time.Second, topic+" #4 (replayed)")

	// Silent again while more is published than the history keeps (5),
	// then cut: the resume cannot be served, and the page says so.
	if frozen := proxy.freeze(); frozen == 0 {
		failed("the proxy had no connection to freeze the second time")
	}
	publishWithToken(t, adminURL, adminToken, topic, 5, 6, 7, 8, 9, 10, 11)
	if cut := proxy.cut(); cut == 0 {
		failed("the proxy had no connection to cut the second time")
	}
	t.Logf("history gone shown: %s", waitFor("gone", 10*time.Second, "history gone for topic "+topic, "after #4 up to #11"))
	publishWithToken(t, adminURL, adminToken, topic, 12)
	waitFor("msg", 5*time.Second, topic+" #12: ")

	// Nothing went wrong on the way: no error entry in the log, connected
	// again, and no exception or error in the console.
	check, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Errors     []string `json:"errors"`
		Status     string   `json:"status"`
		StatusText string   `json:"statusText"`
	}](`({
		errors: [...document.querySelectorAll("#log li.error")].map(li => li.textContent),
		status: document.getElementById("status").className,
		statusText: document.getElementById("status").textContent,
	})`))
	if err != nil {
		failed("reading the page: %v", err)
	}
	if len(check.Errors) > 0 {
		failed("the page shows %d error entries: %q", len(check.Errors), check.Errors)
	}
	if check.Status != "open" || check.StatusText != "connected" {
		failed("#status is %q with class %q, want \"connected\" with class \"open\"", check.StatusText, check.Status)
	}
	for _, m := range console() {
		if m.IsException() || m.Type == chromedp.ConsoleError {
			// The cut connections are the test's doing; Chromium logs them.
			if strings.Contains(m.Text, "WebSocket connection to") {
				t.Logf("console (expected after a cut): %s", m.Text)
				continue
			}
			failed("console %s at %s:%d: %s", m.Type, m.URL, m.Line+1, m.Text)
		}
		t.Logf("console: %s", m)
	}

	saveScreenshot(t, ctx)
	t.Logf("browser checks done in %v", time.Since(begin).Round(time.Millisecond))
}

// publishWithToken publishes {"n": i} to topic for each i in one batch
// through the admin API, and checks that they got seqs in order.
func publishWithToken(t *testing.T, adminURL, token, topic string, ns ...int) {
	t.Helper()
	var msgs []string
	for _, i := range ns {
		msgs = append(msgs, fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topic, i))
	}
	req, err := http.NewRequest("POST", adminURL+"/v1/publish/batch", strings.NewReader(`{"messages":[`+strings.Join(msgs, ",")+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), fmt.Sprintf(`"seq": %d`, ns[len(ns)-1])) {
		t.Fatalf("publishing %v to %s: %s %s", ns, topic, resp.Status, body)
	}
}

// pollEvery makes the polls run on a timer: a headless page may not draw
// frames, so requestAnimationFrame polling is not reliable.
var pollEvery = chromedp.WithPollingInterval(25 * time.Millisecond)

// findChromium returns the browser to use: $CHROMIUM_PATH, else Debian's
// /usr/bin/chromium, else chromium on PATH. When there is none it skips the
// test, except on CI (CI=true), where a browser test that does not run is a
// failure.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("CHROMIUM_PATH=%q: %v", p, err)
		}
		return path
	}
	for _, p := range []string{"/usr/bin/chromium", "chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "no chromium installed (looked for $CHROMIUM_PATH, /usr/bin/chromium and chromium on PATH); " +
		"install it with `apt-get install chromium` as .ci/run does, or set CHROMIUM_PATH"
	if os.Getenv("CI") == "true" {
		t.Fatal("the browser test cannot run on CI: " + msg)
	}
	t.Skip("skipping the browser test: " + msg)
	return ""
}

// collectConsole records the console of the page from now on, until ctx
// ends. The func it returns gives the messages so far.
func collectConsole(ctx context.Context) func() []chromedp.ConsoleMessage {
	messages := chromedp.Console(ctx)
	var (
		mu  sync.Mutex
		got []chromedp.ConsoleMessage
	)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}
	}()
	return func() []chromedp.ConsoleMessage {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// pageState describes the page for a failure message: the status line and
// the log, as a user sees them.
func pageState(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : "(no body)"`))
	if err != nil {
		return "(cannot read the page: " + err.Error() + ")"
	}
	return s
}

// saveScreenshot saves what the browser shows to $WSPUSH_SCREENSHOT, or to
// a file in a temporary directory.
func saveScreenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("no screenshot: %v", err)
		return
	}
	path := os.Getenv("WSPUSH_SCREENSHOT")
	if path == "" {
		path = filepath.Join(t.TempDir(), "demo.png")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("saving the screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// ensureNoChromiumLeft waits until no process runs with the profile
// directory of this test, which Chromium passes to each of its helper
// processes. It kills the ones still there after a grace period, and fails
// the test, since the browser should take them down when it closes.
func ensureNoChromiumLeft(t *testing.T, profile string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		pids := processesWithArg("--user-data-dir=" + profile)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Errorf("chromium processes still running after the browser closed: %v (killed)", pids)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesWithArg returns the processes that have arg on their command line.
func processesWithArg(arg string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for a := range bytes.SplitSeq(cmdline, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// lockedBuffer is a bytes.Buffer that the browser's output goroutine and the
// test can use at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startChromium starts headless Chromium with a fresh profile and nothing
// that talks to the network by itself (no host name resolves: pages are on
// IP literals, so only loopback traffic is possible). Every step runs under
// a root context of timeout, so a hung browser cannot make the test outlive
// its budget; at cleanup the browser is closed gracefully and no helper
// process may be left. out collects the browser's own output.
func startChromium(t *testing.T, chromium string, timeout time.Duration) (ctx context.Context, out *lockedBuffer) {
	t.Helper()
	profile := t.TempDir()
	out = &lockedBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // we may run as root, where the sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(900, 900),
		chromedp.CombinedOutput(out),
	)
	root, cancelRoot := context.WithTimeout(context.Background(), timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		closeCtx, cancelClose := context.WithTimeout(ctx, 5*time.Second)
		if err := chromedp.Cancel(closeCtx); err != nil {
			t.Logf("closing chromium: %v", err)
		}
		cancelClose()
		cancelBrowser()
		cancelAlloc()
		cancelRoot()
		ensureNoChromiumLeft(t, profile)
	})
	return ctx, out
}
