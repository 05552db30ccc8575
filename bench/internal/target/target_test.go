package target

import (
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	s := Spec{Name: "gorilla", Root: "/r", Procs: 3, BasePort: 9000, AdminBase: 9500, Interval: 250 * time.Millisecond}
	a, err := s.Args(2)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a, " "); got != "/r/bin/peer-gorilla -addr 127.0.0.1:9002 -admin-addr 127.0.0.1:9502 -push-interval 250ms" {
		t.Fatalf("args %q", got)
	}
	r := &Running{Spec: s}
	if r.URL() != "ws://127.0.0.1:9000-9002/ws" {
		t.Fatalf("url %s", r.URL())
	}
	if _, err := (Spec{Name: "nope"}).Args(0); err == nil {
		t.Fatal("unknown target accepted")
	}
}

func TestWspushFlags(t *testing.T) {
	helpCache.Store("/fake", "usage\n  -accept-rate int\n    \tx\n  -client-publish\n  -idle-timeout duration\n")
	got := strings.Join(wspushFlags("/fake"), " ")
	if got != "-idle-timeout 0 -accept-rate 0" {
		t.Fatalf("flags %q", got)
	}
}

// TestSSETarget: wspush-sse runs wspush and gives wsload its /sse stream
// (an http:// URL, which wsload reads as SSE).
func TestSSETarget(t *testing.T) {
	r := &Running{Spec: Spec{Name: SSE, BasePort: 9000, Procs: 2}}
	if got := r.URL(); got != "http://127.0.0.1:9000-9001/sse" {
		t.Errorf("url %s", got)
	}
	argv, err := Spec{Name: SSE, Root: "/r", BasePort: 9000, AdminBase: 9100, Interval: time.Second}.Args(0)
	if err != nil || argv[0] != "/r/bin/wspush" {
		t.Errorf("args %v, %v", argv, err)
	}
}
