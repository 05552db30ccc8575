package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wspush/client"
)

// TestClientScriptServed checks GET /wspush.js on the WebSocket port: the
// module's bytes, its content type, a strong ETag, a modest max-age, CORS
// for pages on other origins, and 304 on a matching If-None-Match.
func TestClientScriptServed(t *testing.T) {
	s := startServer(t, "-push-interval", "0")
	url := "http" + strings.TrimSuffix(strings.TrimPrefix(s.ws, "ws"), "/ws") + "/wspush.js"

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != string(client.Script()) {
		t.Fatalf("GET /wspush.js: %d, %d bytes (want 200, the %d bytes of client/wspush.js)", resp.StatusCode, len(body), len(client.Script()))
	}
	want := map[string]string{
		"Content-Type":                "text/javascript; charset=utf-8",
		"ETag":                        client.ETag,
		"Cache-Control":               "public, max-age=300",
		"Access-Control-Allow-Origin": "*",
		"X-Content-Type-Options":      "nosniff",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if !strings.HasPrefix(client.ETag, `"`) || strings.HasPrefix(client.ETag, `W/`) {
		t.Errorf("ETag %s is not a strong entity tag", client.ETag)
	}

	for _, inm := range []string{client.ETag, `"other", ` + client.ETag, "W/" + client.ETag, "*"} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("If-None-Match", inm)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified || len(b) != 0 || resp.Header.Get("ETag") != client.ETag {
			t.Errorf("If-None-Match %s: %d, %d bytes, ETag %q (want 304, no body, the ETag)", inm, resp.StatusCode, len(b), resp.Header.Get("ETag"))
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
		t.Errorf("If-None-Match \"stale\": %d, want 200", resp.StatusCode)
	}
	if code, _ := get(t, url+"x"); code != http.StatusNotFound {
		t.Errorf("GET /wspush.jsx: %d, want 404", code)
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
