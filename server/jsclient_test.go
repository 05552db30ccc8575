package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"wspush/client"
)

// TestClientScriptServed checks GET /wspush.js and the modules it imports
// (GET /wspush/*.js) on the WebSocket port: each module's bytes, its
// content type, a strong ETag of its own, a modest max-age, CORS for pages
// on other origins, and 304 on a matching If-None-Match; every relative
// import of every module names a served path; other paths are 404.
func TestClientScriptServed(t *testing.T) {
	s := startServer(t, "-push-interval", "0")
	base := "http" + strings.TrimSuffix(strings.TrimPrefix(s.ws, "ws"), "/ws")

	paths := client.Paths()
	if len(paths) < 2 || !slices.Contains(paths, "/wspush.js") {
		t.Fatalf("client.Paths() = %v: want /wspush.js and the modules under /wspush/", paths)
	}
	served := map[string]bool{}
	for _, p := range paths {
		served[p] = true
	}
	importRE := regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^"';]*?from\s+"(\.[^"]+)"`)
	etags := map[string]string{}
	for _, p := range paths {
		body, etag, _ := client.File(p)
		if old, dup := etags[etag]; dup {
			t.Errorf("%s and %s have the same ETag %s", old, p, etag)
		}
		etags[etag] = p
		checkModule(t, base+p, body, etag)
		// Relative imports resolve against the module's own URL.
		dir := p[:strings.LastIndex(p, "/")+1]
		for _, m := range importRE.FindAllStringSubmatch(string(body), -1) {
			if target := path.Clean(dir + m[1]); !served[target] {
				t.Errorf("%s imports %q, which resolves to %s: not served", p, m[1], target)
			}
		}
	}
	if body, etag, _ := client.File("/wspush.js"); string(body) != string(client.Script()) || etag != client.ETag {
		t.Errorf("client.Script()/ETag are not /wspush.js's")
	}
	if !strings.Contains(string(client.Script()), `from "./wspush/client.js"`) {
		t.Errorf("/wspush.js does not import ./wspush/client.js")
	}
	for _, p := range []string{"/wspush.jsx", "/wspush/", "/wspush/nope.js", "/wspush/../wspush.js.map", "/wspush/client.js/x"} {
		if code, _ := get(t, base+p); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
}

// checkModule checks one module's answers: 200 with its bytes and headers,
// 304 for a matching If-None-Match, 200 for a stale one.
func checkModule(t *testing.T, url string, want []byte, etag string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != string(want) {
		t.Fatalf("GET %s: %d, %d bytes (want 200, its %d bytes)", url, resp.StatusCode, len(body), len(want))
	}
	wantH := map[string]string{
		"Content-Type":                "text/javascript; charset=utf-8",
		"ETag":                        etag,
		"Cache-Control":               "public, max-age=300",
		"Access-Control-Allow-Origin": "*",
		"X-Content-Type-Options":      "nosniff",
	}
	for k, v := range wantH {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %s: %q, want %q", url, k, got, v)
		}
	}
	if !strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/`) {
		t.Errorf("%s: ETag %s is not a strong entity tag", url, etag)
	}
	for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("If-None-Match", inm)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified || len(b) != 0 || resp.Header.Get("ETag") != etag {
			t.Errorf("%s: If-None-Match %s: %d, %d bytes, ETag %q (want 304, no body, the ETag)", url, inm, resp.StatusCode, len(b), resp.Header.Get("ETag"))
		}
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("If-None-Match", `"stale"`)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s: If-None-Match \"stale\": %d, want 200", url, resp.StatusCode)
	}
}

// TestJSClient runs the JavaScript client's node:test suite (client/test)
// against real wspush processes started by the fixture (jsfixture_test.go).
// Without a node that has WebSocket (Node ≥ 20) the test skips, except on
// CI (CI=true) where it fails.
// WSPUSH_JS_TESTS=pattern runs only the test files whose names contain it.
func TestJSClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		// Node 20 has WebSocket behind the flag, 22 and later by default;
		// older ones have none.
		out, verr := exec.Command(node, "--experimental-websocket", "--no-warnings", "-p", "typeof WebSocket").Output()
		if verr != nil || strings.TrimSpace(string(out)) != "function" {
			err = fmt.Errorf("%s has no WebSocket (%q, %v)", node, strings.TrimSpace(string(out)), verr)
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the JavaScript client's tests need Node ≥ 20 (22 recommended): %v", err)
		}
		t.Skipf("the JavaScript client's tests need Node ≥ 20 (22 recommended): %v", err)
	}
	_, addr := newFixture(t)
	dir, err := filepath.Abs("../client")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"test/"}
	if only := os.Getenv("WSPUSH_JS_TESTS"); only != "" {
		matches, _ := filepath.Glob(filepath.Join(dir, "test", "*"+only+"*.test.mjs"))
		files = files[:0]
		for _, m := range matches {
			files = append(files, strings.TrimPrefix(m, dir+"/"))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"--experimental-websocket", "--no-warnings", "--test", "--test-reporter=spec"}, files...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WSPUSH_TEST_FIXTURE="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		t.Log(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node --test: %v after %v", err, time.Since(begin).Round(time.Millisecond))
	}
	t.Logf("JavaScript suite: %v", time.Since(begin).Round(time.Millisecond))
}
