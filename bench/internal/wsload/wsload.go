// Package wsload drives bin/wsload (the load generator, docs/loadgen.md)
// as a child process pinned with taskset, reads its result.json (schema
// wsload/v1) and derives the steady-state figures wsbench judges a run by.
//
// Concurrency: Run blocks its caller; a Result is plain data. Run may be
// called from several goroutines (each child is its own process group,
// registered with package target so Ctrl-C kills it).
package wsload

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"wspush/bench/internal/target"
)

// Percentiles mirror wsload's lag_ms/connect_ms.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// Second is one point of wsload's per-second series.
type Second struct {
	T        int     `json:"t"`
	Conns    int64   `json:"conns"`
	Connects int64   `json:"connects"`
	Msgs     int64   `json:"msgs"`
	Errors   int64   `json:"errors"`
	Gaps     int64   `json:"gaps"`
	LagP99   float64 `json:"lag_p99"`
	LagMax   float64 `json:"lag_max"`
	CPU      float64 `json:"cpu_cores"`
	LagHist  string  `json:"lag_hist,omitempty"`
}

// Result is the part of wsload/v1 wsbench reads. Raw keeps the whole
// document for bench/results.
type Result struct {
	Schema           string           `json:"schema"`
	Scenario         string           `json:"scenario"`
	DurationS        float64          `json:"duration_s"`
	ConnsTarget      int              `json:"conns_target"`
	ConnsEstablished int64            `json:"conns_established"`
	ConnsPeak        int64            `json:"conns_peak"`
	ConnsFinal       int64            `json:"conns_final"`
	Messages         int64            `json:"messages"`
	Welcomes         int64            `json:"welcomes"`
	Gaps             int64            `json:"gaps"`
	Duplicates       int64            `json:"duplicates"`
	Reorders         int64            `json:"reorders"`
	Sent             int64            `json:"sent"`     // publishes acknowledged (publish), pings (echo)
	Expected         int64            `json:"expected"` // deliveries owed (publish, echo)
	Lost             int64            `json:"lost"`     // owed but never received
	Errors           map[string]int64 `json:"errors"`
	Retries          int64            `json:"retries"` // connect retries made (-retries)
	Disconnects      map[string]int64 `json:"disconnects"`
	LagMS            Percentiles      `json:"lag_ms"`
	ConnectMS        Percentiles      `json:"connect_ms"`
	Series           []Second         `json:"series"`
	Self             struct {
		CPUAvgCores    float64 `json:"cpu_avg_cores"`
		PollerBusyPeak float64 `json:"poller_busy_peak"`
		RSSPerConn     float64 `json:"rss_per_conn_bytes"`
	} `json:"self"`
	Bottleneck struct {
		WsloadBound bool     `json:"wsload_bound"`
		Reasons     []string `json:"reasons"`
		Summary     string   `json:"summary"`
	} `json:"bottleneck"`
	Raw json.RawMessage `json:"-"`
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
// a minute before it is killed.
func Run(ctx context.Context, root string, a Args) (*Result, error) {
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

// Load reads a wsload/v1 result.json.
func Load(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wsbench: %w", err)
	}
	r := &Result{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("wsbench: %s: %w", path, err)
	}
	if r.Schema != "wsload/v1" {
		return nil, fmt.Errorf("wsbench: %s: schema %q, want wsload/v1", path, r.Schema)
	}
	r.Raw = b
	return r, nil
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
func SteadyState(r *Result, from int) (Steady, error) {
	st := Steady{FromT: from, MinConns: -1, WsloadBound: r.Bottleneck.WsloadBound, HistMerged: true}
	h := hdr.New(1, 3_600_000_000, 3)
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
			sh, err := decodeHist(s.LagHist)
			if err != nil {
				return st, err
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
	st.LagP50MS = float64(h.ValueAtQuantile(50)) / 1000
	st.LagP99MS = max(float64(h.ValueAtQuantile(99))/1000, fallbackP99)
	st.LagMaxMS = max(float64(h.Max())/1000, fallbackMax)
	return st, nil
}

func decodeHist(s string) (*hdr.Histogram, error) {
	h, err := hdr.Decode([]byte(s))
	if err == nil {
		return h, nil
	}
	// some encoders emit the raw (not base64) bytes base64'd once more
	b, err2 := base64.StdEncoding.DecodeString(s)
	if err2 == nil {
		if h2, err3 := hdr.Decode(b); err3 == nil {
			return h2, nil
		}
	}
	return nil, fmt.Errorf("wsbench: decode lag histogram: %w", err)
}
