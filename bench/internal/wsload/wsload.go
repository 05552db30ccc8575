// Package wsload drives bin/wsload (the load generator, docs/loadgen.md)
// as a child process pinned with taskset, reads its result.json (schema
// wsload/v1, whose types are wspush/loadgen/result's: this package keeps no
// copy of them) and derives the steady-state figures wsbench judges a run
// by.
//
// Concurrency: Run blocks its caller; an Output is plain data. Run may be
// called from several goroutines (each child is its own process group,
// registered with package target so Ctrl-C kills it).
package wsload

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"wspush/bench/internal/target"
	"wspush/loadgen/result"
)

// Output is one wsload run as wsbench keeps it: the result.json decoded
// into the shared wsload/v1 types (package result, the schema wsload
// itself writes) and the file's bytes, which wsbench embeds unchanged in
// bench/results.
type Output struct {
	*result.Result
	Raw json.RawMessage
}

// Args is a wsload invocation.
type Args struct {
	Scenario string
	Flags    []string      // after the scenario, e.g. -conns 5000 -rate 4000
	Duration time.Duration // the -duration passed (for the kill deadline)
	CPUs     string        // taskset -c list for wsload
	OutDir   string        // result.json and log go here
	Name     string        // file stem
	Live     bool          // keep wsload's live line (no -quiet) in the log
	// Grace is how long after Duration wsload may take to finish (closing
	// and merging workers) before it is killed; 0 = one minute.
	Grace time.Duration
	// Bin is the wsload executable; "" = <root>/bin/wsload.
	Bin string
}

// Run executes wsload and loads its result. The child gets Duration plus
// Grace before it is killed.
func Run(ctx context.Context, root string, a Args) (*Output, error) {
	out := filepath.Join(a.OutDir, a.Name+".json")
	bin := a.Bin
	if bin == "" {
		bin = filepath.Join(root, "bin/wsload")
	}
	argv := append([]string{bin, a.Scenario}, a.Flags...)
	argv = append(argv, "-duration", a.Duration.String(), "-out", out)
	if !a.Live {
		argv = append(argv, "-quiet")
	}
	if a.Grace <= 0 {
		a.Grace = time.Minute
	}
	cmd, err := target.Launch(argv, a.CPUs, filepath.Join(a.OutDir, a.Name+".log"), root)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- target.Reap(cmd, a.Duration+a.Grace) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		target.KillAll()
		<-done
		return nil, fmt.Errorf("wsbench: wsload %s: %w", a.Name, ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("wsbench: wsload %s: %w (log %s.log)", a.Name, err, filepath.Join(a.OutDir, a.Name))
	}
	return Load(out)
}

// Load reads a wsload/v1 result.json, keeping its bytes.
func Load(path string) (*Output, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wsbench: %w", err)
	}
	r, err := result.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("wsbench: %s: %w", path, err)
	}
	return &Output{Result: r, Raw: b}, nil
}

// Steady is a run's figures over the seconds after the ramp.
type Steady struct {
	FromT, ToT  int     // seconds of the series included (inclusive)
	Msgs        int64   // messages received in the window
	MsgsPerSec  float64 // Msgs / window length
	Gaps        int64   // gaps found in the window
	Errors      int64   // errors + disconnects in the window
	LagP50MS    float64 // from the merged per-second histograms
	LagP99MS    float64
	LagMaxMS    float64
	MinConns    int64 // fewest connections open in the window
	WindowS     float64
	HistMerged  bool // false when the series had no histograms (per-second p99 max used)
	WsloadBound bool
}

// SteadyState merges the series from second from (inclusive) to the last
// full second. Gaps found in the last second of the run are included.
func SteadyState(r *result.Result, from int) (Steady, error) {
	st := Steady{FromT: from, MinConns: -1, WsloadBound: r.Bottleneck.WsloadBound, HistMerged: true}
	h := result.NewHist()
	var fallbackP99, fallbackMax float64
	n := 0
	for _, s := range r.Series {
		if s.T < from {
			continue
		}
		n++
		st.ToT = s.T
		st.Msgs += s.Msgs
		st.Gaps += s.Gaps
		st.Errors += s.Errors
		if st.MinConns < 0 || s.Conns < st.MinConns {
			st.MinConns = s.Conns
		}
		switch {
		case s.LagHist != "":
			sh, err := result.DecodeHist(s.LagHist)
			if err != nil {
				return st, fmt.Errorf("wsbench: lag histogram of second %d: %w", s.T, err)
			}
			h.Merge(sh)
		case s.Msgs > 0: // no histogram: fall back to the second's own figures
			st.HistMerged = false
			fallbackP99 = max(fallbackP99, s.LagP99)
			fallbackMax = max(fallbackMax, s.LagMax)
		}
	}
	if n == 0 {
		return st, fmt.Errorf("wsbench: no series after t=%d (run has %d seconds)", from, len(r.Series))
	}
	st.WindowS = float64(n)
	st.MsgsPerSec = float64(st.Msgs) / st.WindowS
	pc := h.Percentiles()
	st.LagP50MS = pc.P50
	st.LagP99MS = max(pc.P99, fallbackP99)
	st.LagMaxMS = max(pc.Max, fallbackMax)
	return st, nil
}
