package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// -healthcheck asks the running server's /healthz: exit 0 while it is
// healthy, 1 while it drains and when nothing answers.
func TestHealthcheckAsksHealthz(t *testing.T) {
	s := startServer(t)
	addr := s.n.admin.Addr().String()
	var out bytes.Buffer
	if code := healthcheck(addr, &out); code != 0 || !strings.Contains(out.String(), `"status": "ok"`) {
		t.Fatalf("healthy server: exit %d, %q; want 0 and the status", code, out.String())
	}
	s.n.draining.Store(true)
	out.Reset()
	if code := healthcheck(addr, &out); code != 1 || !strings.Contains(out.String(), "503 Service Unavailable") {
		t.Fatalf("draining server: exit %d, %q; want 1 and the 503", code, out.String())
	}
	s.n.draining.Store(false)
	s.n.shutdown(s.cfg)
	out.Reset()
	if code := healthcheck(addr, &out); code != 1 || !strings.Contains(out.String(), "connection refused") {
		t.Fatalf("no server: exit %d, %q; want 1", code, out.String())
	}
}

// -healthcheck takes -admin-addr from the flags or WSPUSH_ADMIN_ADDR and
// skips validation (the token a non-loopback admin address needs is not
// the health check's business); WSPUSH_HEALTHCHECK does nothing.
func TestHealthcheckFlag(t *testing.T) {
	env := map[string]string{"WSPUSH_ADMIN_ADDR": "0.0.0.0:9191", "WSPUSH_HEALTHCHECK": "true"}
	getenv := func(k string) string { return env[k] }
	c, err := parseConfig([]string{"-healthcheck"}, getenv, &bytes.Buffer{})
	if !errors.Is(err, errHealthcheck) || c.AdminAddr != "0.0.0.0:9191" {
		t.Fatalf("-healthcheck: %v, admin %q; want errHealthcheck with WSPUSH_ADMIN_ADDR", err, c.AdminAddr)
	}
	if _, err := parseConfig(nil, getenv, &bytes.Buffer{}); errors.Is(err, errHealthcheck) || err == nil {
		t.Fatalf("WSPUSH_HEALTHCHECK=true without the flag: %v; want a normal start (here refused for the missing token)", err)
	}
	for addr, want := range map[string]string{
		"":               "http://127.0.0.1:8081/healthz",
		":8081":          "http://127.0.0.1:8081/healthz",
		"0.0.0.0:8081":   "http://127.0.0.1:8081/healthz",
		"[::]:8081":      "http://[::1]:8081/healthz",
		"127.0.0.2:9000": "http://127.0.0.2:9000/healthz",
		"[::1]:8081":     "http://[::1]:8081/healthz",
		"localhost:8081": "http://localhost:8081/healthz",
		"127.0.0.1:0":    "",
		"nonsense":       "",
	} {
		got, err := healthzURL(addr)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("healthzURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}
