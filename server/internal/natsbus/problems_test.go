package natsbus

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"wspush/server/internal/metrics"
)

// Every error is counted; the log gets one line per kind per
// problemLogEvery, carrying how many errors it stands for.
func TestProblemsCountEveryErrorAndLogAtABoundedRate(t *testing.T) {
	var out bytes.Buffer
	reg := metrics.New(func() int64 { return 0 }).Registry()
	p := newProblems(slog.New(slog.NewTextHandler(&out, nil)), reg)
	boom := errors.New("boom")
	for range 5 {
		p.report(kindApply, boom, "topic", "a")
	}
	p.report(kindHeader, boom)
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Fatalf("%d lines, want one per kind:\n%s", n, out.String())
	}
	p.mu.Lock()
	p.logged[kindApply] = time.Now().Add(-problemLogEvery) // as if the interval had passed
	p.mu.Unlock()
	p.report(kindApply, boom, "topic", "a")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "could not be applied") || !strings.Contains(lines[2], "count=5") {
		t.Fatalf("after the interval: %q, want a line for the 5 apply errors since the first", lines)
	}
	var text bytes.Buffer
	if err := reg.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`wspush_cluster_errors_total{kind="apply"} 6`, `wspush_cluster_errors_total{kind="header"} 1`, `wspush_cluster_errors_total{kind="consume"} 0`} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, text.String())
		}
	}
}
