package main

// A real Prometheus (Debian's prometheus package: /usr/bin/prometheus and
// promtool; .ci/run installs it) scrapes a loaded wspush: /metrics passes
// `promtool check metrics`, Prometheus reads every family with its type,
// the alert rules of docs/ops/alerts.yml load and evaluate, and every
// PromQL expression of docs/ops/grafana-dashboard.json returns data.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

const (
	dashboardPath = "../docs/ops/grafana-dashboard.json"
	alertsPath    = "../docs/ops/alerts.yml"
	alertsTest    = "../docs/ops/alerts_test.yml"
)

// findPromTool returns the path of Prometheus's tool name (prometheus or
// promtool): $env, else Debian's /usr/bin/name, else name on PATH. Without
// one it skips the test, or fails it when CI=true: CI installs the package
// (.ci/run), so there a missing binary is a broken setup, not a reason to
// pass.
func findPromTool(t *testing.T, name, env string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("%s=%q: %v", env, p, err)
		}
		return path
	}
	for _, p := range []string{"/usr/bin/" + name, name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := fmt.Sprintf("no %s installed (looked for $%s, /usr/bin/%s and %s on PATH); "+
		"install Debian's prometheus package (`apt-get install prometheus`) as .ci/run does, or set %s", name, env, name, name, env)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("skipping: " + msg)
	return ""
}

// promtoolRun runs promtool with args and fails the test unless it exits 0
// with no complaint on stdout or stderr other than lines that start with
// one of okPrefixes.
func promtoolRun(t *testing.T, promtool string, stdin []byte, okPrefixes []string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var bad []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !slices.ContainsFunc(okPrefixes, func(p string) bool { return strings.HasPrefix(strings.TrimSpace(line), p) }) {
			bad = append(bad, line)
		}
	}
	if err != nil || len(bad) > 0 {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// promServer is a prometheus process started for a test.
type promServer struct {
	url string // http://127.0.0.1:port
	out *syncBuffer
}

// startPrometheus runs prometheus with a config that scrapes target (the
// admin listener) every second as job "wspush" and loads rules.
func startPrometheus(t *testing.T, bin, target, rules string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: wspush
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &promServer{url: "http://" + addr, out: &syncBuffer{}}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("prometheus did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.out.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited: %v\n%s", err, p.out.String())
		default:
		}
		if resp, err := http.Get(p.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 15s:\n%s", p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// api GETs /api/v1/<path> and decodes its data into v; it returns
// Prometheus's error text, if any.
func (p *promServer) api(t *testing.T, path string, v any) string {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if body.Status != "success" {
		return fmt.Sprintf("%s (HTTP %d)", cmp.Or(body.Error, body.Status), resp.StatusCode)
	}
	if err := json.Unmarshal(body.Data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ""
}

// sample is one series of an instant query's vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) float() float64 {
	str, _ := s.Value[1].(string)
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// query runs an instant query; it returns the vector or Prometheus's error.
func (p *promServer) query(t *testing.T, q string) ([]sample, string) {
	t.Helper()
	var data struct {
		ResultType string   `json:"resultType"`
		Result     []sample `json:"result"`
	}
	if e := p.api(t, "query?query="+url.QueryEscape(q), &data); e != "" {
		return nil, e
	}
	if data.ResultType != "vector" {
		return nil, "result type " + data.ResultType + ", want vector"
	}
	return data.Result, ""
}

// value returns the single value of q, or NaN if there is none.
func (p *promServer) value(t *testing.T, q string) float64 {
	t.Helper()
	r, e := p.query(t, q)
	if e != "" || len(r) != 1 {
		return math.NaN()
	}
	return r[0].float()
}

// loadWspush puts some of everything the dashboard shows on s: conns
// clients, refusals at -max-conns, subscriptions and publishes that evict
// history, bad messages and client closes. It returns the open clients.
func loadWspush(t *testing.T, s *testServer, conns, refused, closes int) []*websocket.Conn {
	t.Helper()
	cs := make([]*websocket.Conn, conns)
	for i := range cs {
		cs[i] = dial(t, s.ws)
		if m := next(t, cs[i], 5*time.Second); m.Type != wire.TypeWelcome {
			t.Fatalf("first message %+v, want the welcome", m)
		}
	}
	for range refused {
		c, resp, err := websocket.DefaultDialer.Dial(s.ws, nil)
		if err == nil {
			c.Close()
			t.Fatalf("dial over -max-conns %d succeeded", conns)
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("dial over -max-conns: %v %+v, want HTTP 503", err, resp)
		}
	}
	for i, c := range cs[:40] {
		subscribe(t, c, fmt.Sprintf(`{"type":"sub","topic":"t.%d"}`, i%4))
	}
	value := `"` + strings.Repeat("v", 300) + `"`
	for i := range 40 { // ~18 KB of history over -max-history-bytes 8 KiB: evictions
		publish(t, s, "t."+strconv.Itoa(i%4), value)
	}
	for _, c := range cs[40:43] {
		send(t, c, `not json`)
	}
	for _, c := range cs[conns-closes:] {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
		c.Close()
	}
	return cs[:conns-closes]
}

// wantTypes are the families whose TYPE Prometheus must report; every other
// wspush_* family must be typed too (not "unknown").
var wantTypes = map[string]string{
	"wspush_connections":                  "gauge",
	"wspush_connections_accepted_total":   "counter",
	"wspush_connections_closed_total":     "counter",
	"wspush_upgrade_failures_total":       "counter",
	"wspush_pushes_total":                 "counter",
	"wspush_messages_delivered_total":     "counter",
	"wspush_frames_out_total":             "counter",
	"wspush_bytes_in_total":               "counter",
	"wspush_tick_lag_seconds":             "histogram",
	"wspush_wheel_slots_late_total":       "counter",
	"wspush_history_bytes":                "gauge",
	"wspush_history_evictions_total":      "counter",
	"wspush_cluster_errors_total":         "counter",
	"wspush_nats_connected":               "gauge",
	"wspush_nats_publish_seconds":         "histogram",
	"wspush_nats_publish_conflicts_total": "counter",
	"process_cpu_seconds_total":           "counter",
	"process_resident_memory_bytes":       "gauge",
	"process_open_fds":                    "gauge",
	"process_max_fds":                     "gauge",
	"go_goroutines":                       "gauge",
}

func TestPrometheusScrapesLoadedServer(t *testing.T) {
	promBin := findPromTool(t, "prometheus", "PROMETHEUS_PATH")
	promtool := findPromTool(t, "promtool", "PROMTOOL_PATH")
	rules, err := filepath.Abs(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	const conns, refused, closes = 250, 5, 20
	ns := startNATS(t, t.TempDir(), -1)
	s := startServer(t, "-nats", ns.ClientURL(), "-push-interval", "200ms", "-max-conns", strconv.Itoa(conns),
		"-max-history-bytes", "8KiB")
	eventually(t, 10*time.Second, "node healthy", func() bool { return healthy(s) })
	p := startPrometheus(t, promBin, strings.TrimPrefix(s.admin, "http://"), rules)
	eventually(t, 15*time.Second, `up{job="wspush"} == 1`, func() bool { return p.value(t, `up{job="wspush"}`) == 1 })

	// The load comes after the first scrape, so that rates over the test's
	// minute see it.
	open := loadWspush(t, s, conns, refused, closes)
	eventually(t, 10*time.Second, "the load counted", func() bool {
		st := stats(t, s)
		closed, _ := st["closed"].(map[string]any)
		failed, _ := st["upgrade_failures"].(map[string]any)
		return st["connections"] == float64(len(open)) && closed["client"] == float64(closes) && failed["max_conns"] == float64(refused)
	})
	loaded := time.Now()
	eventually(t, 10*time.Second, "two scrapes after the load", func() bool {
		return p.value(t, `timestamp(up{job="wspush"})`) > float64(loaded.Add(1500*time.Millisecond).UnixMilli())/1000
	})

	_, text := get(t, s.admin+"/metrics")
	t.Run("promtool check metrics", func(t *testing.T) {
		promtoolRun(t, promtool, []byte(text), nil, "check", "metrics")
	})
	t.Run("metadata", func(t *testing.T) { checkMetadata(t, p, text) })
	t.Run("dashboard", func(t *testing.T) { checkDashboardQueries(t, p) })
	t.Run("alert rules", func(t *testing.T) { checkRulesLoaded(t, p) })
}

// checkMetadata checks that Prometheus has every family of text with the
// type text declares and help, and the types of wantTypes.
func checkMetadata(t *testing.T, p *promServer, text string) {
	var meta map[string][]struct {
		Type string `json:"type"`
		Help string `json:"help"`
	}
	if e := p.api(t, "metadata", &meta); e != "" {
		t.Fatal(e)
	}
	declared := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			declared[f[2]] = f[3]
		}
	}
	for name, typ := range wantTypes {
		if declared[name] != typ {
			t.Errorf("/metrics declares %s as %q, want %q", name, declared[name], typ)
		}
	}
	for name, typ := range declared {
		m := meta[name]
		switch {
		case len(m) == 0:
			t.Errorf("Prometheus has no metadata for %s", name)
		case m[0].Type != typ:
			t.Errorf("Prometheus reads %s as %q, /metrics says %q", name, m[0].Type, typ)
		case m[0].Help == "":
			t.Errorf("Prometheus has no help for %s", name)
		}
	}
	for name, m := range meta {
		if strings.HasPrefix(name, "wspush_") && (len(m) == 0 || m[0].Type == "unknown" || m[0].Type == "untyped") {
			t.Errorf("Prometheus reads %s as untyped: %+v", name, m)
		}
	}
}

// dashboardVars are the values the test gives the dashboard's variables.
var dashboardVars = strings.NewReplacer(`$__rate_interval`, `1m`, `$job`, `wspush`, `$instance`, `.*`)

// allowedEmpty lists dashboard expressions that may return no series here,
// with the reason. None today: the load provokes every series the panels
// use, and the node runs with -nats so the cluster series exist.
var allowedEmpty = map[string]string{}

// mustBePositive are panels whose every series must be above 0 after the
// load (the others may be 0, never NaN).
var mustBePositive = []string{"Instances up", "Connections", "Connections per instance", "Upgrades accepted /s",
	"Tick pushes /s", "Messages delivered /s", "Bad client messages /s", "Frames /s", "Bytes /s", "History bytes",
	"History evictions /s", "NATS connected", "NATS publish latency p50 / p99", "CPU", "Resident memory",
	"Goroutines", "File descriptors"}

func checkDashboardQueries(t *testing.T, p *promServer) {
	d := readDashboard(t)
	n := 0
	for _, panel := range d.allPanels() {
		for _, target := range panel.Targets {
			n++
			q := dashboardVars.Replace(target.Expr)
			if strings.Contains(q, "$") {
				t.Errorf("panel %q: unknown variable in %s", panel.Title, target.Expr)
				continue
			}
			r, e := p.query(t, q)
			switch {
			case e != "":
				t.Errorf("panel %q: %s: %s", panel.Title, q, e)
			case len(r) == 0:
				if why, ok := allowedEmpty[target.Expr]; ok {
					t.Logf("panel %q: empty, as allowed: %s", panel.Title, why)
				} else {
					t.Errorf("panel %q: %s returns no series", panel.Title, q)
				}
			}
			for _, s := range r {
				v := s.float()
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Errorf("panel %q: %s: %v = %v", panel.Title, q, s.Metric, v)
				}
				if v <= 0 && slices.Contains(mustBePositive, panel.Title) {
					t.Errorf("panel %q: %s: %v = %v, want > 0 after the load", panel.Title, q, s.Metric, v)
				}
			}
		}
	}
	// The variables' label_values(metric, label) queries.
	for _, v := range d.Templating.List {
		m := regexp.MustCompile(`^label_values\((.+), (\w+)\)$`).FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		r, e := p.query(t, dashboardVars.Replace(m[1]))
		if e != "" || len(r) == 0 || r[0].Metric[m[2]] == "" {
			t.Errorf("variable %s: %s gives no %s (%s)", v.Name, m[1], m[2], e)
		}
	}
	t.Logf("%d dashboard expressions checked", n)
}

// checkRulesLoaded checks that Prometheus loaded every rule of alerts.yml
// and evaluates each without error, and that every series name the rules
// use exists in what it scraped.
func checkRulesLoaded(t *testing.T, p *promServer) {
	type rule struct {
		Name      string `json:"name"`
		Query     string `json:"query"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
		LastEval  string `json:"lastEvaluation"`
	}
	var data struct {
		Groups []struct {
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	var rules []rule
	eventually(t, 10*time.Second, "every rule evaluated", func() bool {
		if e := p.api(t, "rules", &data); e != "" {
			t.Fatal(e)
		}
		rules = nil
		for _, g := range data.Groups {
			rules = append(rules, g.Rules...)
		}
		return len(rules) > 0 && !slices.ContainsFunc(rules, func(r rule) bool { return strings.HasPrefix(r.LastEval, "0001") })
	})
	var names []string
	if e := p.api(t, "label/__name__/values", &names); e != "" {
		t.Fatal(e)
	}
	for _, r := range rules {
		if r.Health != "ok" || r.LastError != "" {
			t.Errorf("rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
		}
		for _, name := range regexp.MustCompile(`\b(?:wspush|process|go)_[a-z_]+|\bup\b`).FindAllString(r.Query, -1) {
			if !slices.Contains(names, name) {
				t.Errorf("rule %s uses %s, which wspush does not expose", r.Name, name)
			}
		}
	}
	if len(rules) != 8 {
		t.Errorf("%d rules loaded, want the 8 of %s", len(rules), alertsPath)
	}
}
