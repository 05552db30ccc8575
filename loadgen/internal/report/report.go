// Package report renders result.json files: a text or Markdown table, the
// JSON itself (several files merged when they come from one run's workers
// is up to the caller; report shows them side by side), and PNG charts
// (lag percentile spectrum, per-second throughput and lag) with gonum/plot.
//
// Concurrency: stateless functions; nothing is shared.
package report

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"wspush/loadgen/result"
)

// Main is "wsload report".
func Main(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsload report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "text, md, json or png")
	out := fs.String("o", "", "output file (png: default wsload.png; others: stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("wsload: report needs at least one result.json")
	}
	var rs []*result.Result
	var names []string
	for _, p := range fs.Args() {
		r, err := result.Load(p)
		if err != nil {
			return fmt.Errorf("wsload: %w", err)
		}
		rs = append(rs, r)
		names = append(names, p)
	}
	w := stdout
	if *out != "" && *format != "png" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("wsload: %w", err)
		}
		defer f.Close()
		w = f
	}
	switch *format {
	case "text":
		return Text(w, rs)
	case "md":
		return Markdown(w, rs, names)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if len(rs) == 1 {
			return enc.Encode(rs[0])
		}
		return enc.Encode(rs)
	case "png":
		path := *out
		if path == "" {
			path = "wsload.png"
		}
		if err := PNG(path, rs, names); err != nil {
			return fmt.Errorf("wsload: %w", err)
		}
		fmt.Fprintln(stderr, "wrote", path)
		return nil
	}
	return fmt.Errorf("wsload: unknown -format %q", *format)
}

type row struct{ k, v string }

func rows(r *result.Result) []row {
	p := func(x result.Percentiles) string {
		if x.Count == 0 {
			return "-"
		}
		return fmt.Sprintf("p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (n=%d)", x.P50, x.P90, x.P99, x.P999, x.Max, x.Count)
	}
	rate := 0.0
	if r.DurationS > 0 {
		rate = float64(r.Messages) / r.DurationS
	}
	lagName := "lag ms (recv − due)"
	switch r.Scenario {
	case "echo":
		lagName = "round trip ms"
	case "publish", "churn":
		lagName = "end-to-end ms (recv − ts)"
	}
	out := []row{
		{"scenario", fmt.Sprintf("%s, %.1f s, %d process(es), %d source(s)", r.Scenario, r.DurationS, r.Params.Procs, r.Params.Sources)},
		{"connections", fmt.Sprintf("target %d  established %d  peak %d  at end %d", r.ConnsTarget, r.ConnsEstablished, r.ConnsPeak, r.ConnsFinal)},
		{"connect ms", p(r.ConnectMS)},
		{"messages", fmt.Sprintf("%d (%.0f/s avg), welcomes %d", r.Messages, rate, r.Welcomes)},
		{lagName, p(r.LagMS)},
		{"sequence", fmt.Sprintf("gaps %d  duplicates %d  reorders %d  welcome missing %d", r.Gaps, r.Duplicates, r.Reorders, r.WelcomeMissing)},
	}
	if r.Expected > 0 || r.Sent > 0 {
		out = append(out, row{"delivery", fmt.Sprintf("sent %d  expected %d  lost %d", r.Sent, r.Expected, r.Lost)})
	}
	out = append(out, row{"errors", counts(r.Errors)})
	if r.Retries > 0 || r.Params.Retries > 0 {
		out = append(out, row{"connect retries", fmt.Sprintf("%d (-retries %d, backoff %gs)", r.Retries, r.Params.Retries, r.Params.RetryBackoffS)})
	}
	out = append(out,
		row{"disconnects", counts(r.Disconnects)},
		row{"wsload cpu", fmt.Sprintf("%.1f s, avg %.2f cores, peak %.2f%s, busiest poller %.0f%%, %.2f µs/msg",
			r.Self.CPUSeconds, r.Self.CPUAvgCores, r.Self.CPUPeakCores, ofCores(r.Self.CoresAvailable), r.Self.PollerBusyPeak*100, r.Self.CPUPerMsgUS)},
		row{"wsload memory", fmt.Sprintf("RSS %.1f MB (%.0f B/conn), Go heap %.1f MB (%.0f B/conn)",
			float64(r.Self.RSSPeakBytes)/1e6, r.Self.RSSPerConn, float64(r.Self.HeapBytes)/1e6, r.Self.HeapPerConn)},
		row{"wsload timing", fmt.Sprintf("timer lateness p99 max %.1f ms, ramp behind max %.1f ms, machine CPU peak %.0f%%",
			r.Self.SchedDelayP99MS, r.Self.RampBehindMaxMS, r.Self.MachineCPUPeak*100)},
		row{"bottleneck", r.Bottleneck.Summary},
	)
	for _, reason := range r.Bottleneck.Reasons {
		out = append(out, row{"", "- " + reason})
	}
	return out
}

// ofCores is " of N available" when the file records it (newer files).
func ofCores(c float64) string {
	if c <= 0 {
		return ""
	}
	return fmt.Sprintf(" of %.2f available", c)
}

func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString("  ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

// Text writes the summary table of each result.
func Text(w io.Writer, rs []*result.Result) error {
	for i, r := range rs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		for _, row := range rows(r) {
			if _, err := fmt.Fprintf(w, "%-26s %s\n", row.k, row.v); err != nil {
				return fmt.Errorf("wsload: %w", err)
			}
		}
	}
	return nil
}

// Markdown writes one table per result and a per-second table.
func Markdown(w io.Writer, rs []*result.Result, names []string) error {
	var b strings.Builder
	for i, r := range rs {
		fmt.Fprintf(&b, "### %s\n\n| | |\n|---|---|\n", names[i])
		for _, row := range rows(r) {
			fmt.Fprintf(&b, "| %s | %s |\n", row.k, strings.ReplaceAll(row.v, "|", "\\|"))
		}
		b.WriteString("\n| t (s) | conns | connects | msgs | lag p50 ms | lag p99 ms | gaps | errors | cpu cores |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, s := range r.Series {
			fmt.Fprintf(&b, "| %d | %d | %d | %d | %.2f | %.2f | %d | %d | %.2f |\n", s.T, s.Conns, s.Connects, s.Msgs, s.LagP50, s.LagP99, s.Gaps, s.Errors, s.CPU)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
