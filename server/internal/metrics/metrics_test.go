package metrics

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func loaded() *Metrics {
	m := New(func() int64 { return 3 })
	m.SetHistory(func() int64 { return 100 }, func() uint64 { return 2 })
	m.SetUsers(func() int64 { return 1 })
	m.Accepted.Add(5)
	m.Closed(ClosedSlow)
	m.UpgradeFailed(UpgradeMaxConns)
	m.TickLag.Update(0.003)
	r := m.Registry()
	r.NewCounter("wspush_test_total", "A labelled counter.", "kind", "a").Inc()
	r.NewCounter("wspush_test_total", "A labelled counter.", "kind", "b")
	return m
}

// Every family has help text and its type: the text /metrics serves parses
// with Prometheus's own parser, and the wspush families have the types
// their names promise.
func TestEveryFamilyHasHelpAndType(t *testing.T) {
	var text bytes.Buffer
	if err := loaded().Registry().WriteText(&text); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, text.String())
	}
	want := map[string]dto.MetricType{
		"wspush_connections":                dto.MetricType_GAUGE,
		"wspush_connections_accepted_total": dto.MetricType_COUNTER,
		"wspush_connections_closed_total":   dto.MetricType_COUNTER,
		"wspush_upgrade_failures_total":     dto.MetricType_COUNTER,
		"wspush_tick_lag_seconds":           dto.MetricType_HISTOGRAM,
		"wspush_history_bytes":              dto.MetricType_GAUGE,
		"wspush_history_evictions_total":    dto.MetricType_COUNTER,
		"wspush_users":                      dto.MetricType_GAUGE,
		"wspush_test_total":                 dto.MetricType_COUNTER,
		"process_open_fds":                  dto.MetricType_GAUGE,
		"go_goroutines":                     dto.MetricType_GAUGE,
	}
	for name, f := range fams {
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
		if typ, ok := want[name]; ok && f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
	}
	for name := range want {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	for _, line := range []string{`wspush_connections 3`, `wspush_connections_accepted_total 5`, `wspush_connections_closed_total{reason="slow_consumer"} 1`,
		`wspush_connections_closed_total{reason="idle"} 0`, `wspush_history_evictions_total 2`, `wspush_tick_lag_seconds_bucket{le="0.005"} 1`,
		`wspush_test_total{kind="a"} 1`, `wspush_test_total{kind="b"} 0`} {
		if !strings.Contains(text.String(), line+"\n") {
			t.Errorf("no line %q", line)
		}
	}
}

// /v1/stats keeps its keys.
func TestStatsKeys(t *testing.T) {
	b, err := json.Marshal(loaded().Snapshot(3))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"accepted", "bad_messages", "bytes_in", "bytes_out", "closed", "connections", "frames_in", "frames_out",
		"goroutines", "heap_bytes", "history_bytes", "messages_delivered", "pushes", "slow_consumer_drops", "upgrade_failures",
		"uptime_seconds", "users", "wheel_slots_late"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v\nwant %v", keys, want)
	}
	if doc["accepted"] != 5.0 || doc["slow_consumer_drops"] != 1.0 || doc["history_bytes"] != 100.0 {
		t.Errorf("stats %s", b)
	}
	if c := doc["closed"].(map[string]any); len(c) != len(closeReasons) || c["slow_consumer"] != 1.0 {
		t.Errorf("closed %v", c)
	}
}

// The hot path's operations do not allocate.
func TestHotPathDoesNotAllocate(t *testing.T) {
	m := New(func() int64 { return 0 })
	for name, f := range map[string]func(){
		"Counter.Inc":      func() { m.FramesOut.Inc() },
		"Counter.Add":      func() { m.BytesOut.Add(100) },
		"Closed":           func() { m.Closed(ClosedWriteError) },
		"UpgradeFailed":    func() { m.UpgradeFailed(UpgradeMaxConns) },
		"Histogram.Update": func() { m.TickLag.Update(0.0042) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}
