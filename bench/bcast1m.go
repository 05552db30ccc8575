package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"wspush/bench/internal/env"
	"wspush/bench/internal/scenario"
)

// cmdBcast1M is `wsbench bcast1m`: one broadcast at a time to (by
// default) 1,000,000 clients over 60 processes of one target; the work is
// scenario.Bcast1M.
func cmdBcast1M(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bcast1m", flag.ContinueOnError)
	var c scenario.Bcast1MConfig
	root := fs.String("root", ".", "repository root")
	outDir := fs.String("out", "bench/results", "results directory")
	md := fs.String("md", "docs/benchmarks.md", "regenerate this report after the run (\"\" = don't)")
	noBuild := fs.Bool("no-build", false, "do not build bin/ first")
	fs.StringVar(&c.Target, "target", "", "floor, wspush (POST /v1/broadcast to every process) or wspush-nats (nodes joined by NATS, POST to node 0)")
	fs.IntVar(&c.Conns, "conns", 1_000_000, "clients")
	fs.IntVar(&c.Procs, "procs", 60, "server processes, ports 9000… and admin 10000…")
	fs.IntVar(&c.MaxConns, "max-conns", 17000, "wspush -max-conns per process")
	fs.IntVar(&c.Rate, "rate", 5000, "ramp, connections per second")
	fs.IntVar(&c.Broadcasts, "broadcasts", 2, "broadcasts, one at a time")
	fs.DurationVar(&c.Every, "every", 45*time.Second, "time between broadcasts")
	fs.DurationVar(&c.After, "after", 0, "first broadcast this long after wsload's launch (0 = conns/rate × 1.25 + 20s)")
	fs.StringVar(&c.Sources, "sources", "127.0.0.2-127.0.0.60", "wsload -sources")
	fs.IntVar(&c.Port, "port", 9000, "first process's WebSocket port")
	fs.IntVar(&c.AdminPort, "admin-port", 10000, "first process's admin port")
	fs.IntVar(&c.LoadProcs, "load-procs", 0, "wsload -procs (0 = auto: 52 at 1M); keeps the 1M layout at fewer clients")
	fs.IntVar(&c.GoMaxProcs, "gomaxprocs", 0, "GOMAXPROCS of every process started (0 = Go's default, the CPU count)")
	fs.StringVar(&c.Bin, "bin", "", "directory of wspush, wsload and peer-floor (\"\" = <root>/bin)")
	fs.Float64Var(&c.MinFreeG, "min-free-gib", 16, "refuse to start with less MemAvailable")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	e, err := prepare(ctx, absRoot, "wspush", *noBuild)
	if err != nil {
		return err
	}
	e.Conns, e.Rate, e.Rounds = c.Conns, c.Rate, 1
	f := &scenario.File{Schema: scenario.Schema, Scenario: "bcast1m-" + c.Target, Mode: "bcast1m", Started: time.Now().UTC(), Env: env.Collect(absRoot),
		Conns: c.Conns, Rate: c.Rate, Rounds: 1, Targets: []string{c.Target}}
	r, runErr := scenario.Bcast1M(ctx, e, c)
	if runErr != nil {
		r.Err = runErr.Error()
	}
	f.Bcast1M = r
	f.Finished = time.Now().UTC()
	dir := abs(absRoot, *outDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	path := filepath.Join(dir, f.Started.Format("2006-01-02T1504")+"-bcast1m-"+c.Target+".json")
	if r.Wsload == nil {
		f.Notes = append(f.Notes, "incomplete: "+r.Err)
		path += ".partial"
	}
	if err := f.Save(path); err != nil {
		return err
	}
	for _, b := range r.Broadcasts {
		e.Log("broadcast %d: first %.0f ms, p50 %.0f, p99 %.0f, last %.0f ms; %d deliveries", b.N, b.FirstMS, b.P50MS, b.P99MS, b.LastMS, b.Deliveries)
	}
	e.Log("wrote %s: %d of %d deliveries, gaps %d", path, r.Deliveries, r.Expected, r.Gaps)
	if *md != "" && r.Wsload != nil {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		if err := writeReport(abs(absRoot, *md), abs(absRoot, "docs/img"), files); err != nil {
			return err
		}
	}
	return runErr
}
