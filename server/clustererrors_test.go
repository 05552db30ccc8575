package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// syncBuffer is an io.Writer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestClusterErrorsCountedAndLogged checks that a stream message the node
// cannot apply (over -max-topics) or read (no wspush headers) is counted
// in wspush_cluster_errors_total and logged, not dropped in silence.
func TestClusterErrorsCountedAndLogged(t *testing.T) {
	var logs syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)

	ns := startNATS(t, t.TempDir(), -1)
	a := startClusterNode(t, ns, "-max-topics", "1")
	eventually(t, 10*time.Second, "node healthy", func() bool { return healthy(a) })
	if _, body := get(t, a.admin+"/metrics"); !strings.Contains(body, `wspush_cluster_errors_total{kind="apply"} 0`) {
		t.Fatal("wspush_cluster_errors_total is not exported before any error")
	}
	publish(t, a, "one", "1")
	publish(t, a, "two", "2") // stored by JetStream, refused by the local bus: one topic only

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("wspush.t.GARBAGE", []byte("3")); err != nil { // no wspush headers
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	publish(t, a, "one", "4")

	want := []string{`wspush_cluster_errors_total{kind="apply"} 1`, `wspush_cluster_errors_total{kind="header"} 1`}
	eventually(t, 10*time.Second, "both errors counted", func() bool {
		_, body := get(t, a.admin+"/metrics")
		return strings.Contains(body, want[0]) && strings.Contains(body, want[1])
	})
	out := logs.String()
	for _, line := range []string{"natsbus: a stream message could not be applied", `topic=two`, "natsbus: a stream message's wspush headers do not parse"} {
		if !strings.Contains(out, line) {
			t.Errorf("log lacks %q:\n%s", line, out)
		}
	}
}
