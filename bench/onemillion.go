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

func cmdOneMillion(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("onemillion", flag.ContinueOnError)
	c := scenario.OneMillionConfig{}
	root := fs.String("root", ".", "repository root")
	outDir := fs.String("out", "bench/results", "results directory")
	md := fs.String("md", "docs/benchmarks.md", "regenerate this report after the run (\"\" = don't)")
	serverCPUs := fs.String("server-cpus", "", "taskset -c for the wspush processes (\"\" = unpinned: 60 servers and ~52 wsload workers share both cores)")
	loadCPUs := fs.String("load-cpus", "", "taskset -c for wsload (\"\" = unpinned)")
	fs.IntVar(&c.Conns, "conns", 1_000_000, "connections")
	fs.IntVar(&c.Procs, "procs", 60, "wspush processes (ports 9000…)")
	fs.IntVar(&c.MaxConns, "max-conns", 17000, "-max-conns per wspush process")
	fs.IntVar(&c.Rate, "rate", 5000, "ramp, connections per second")
	fs.DurationVar(&c.Interval, "push-interval", 10*time.Second, "tick period per connection")
	fs.DurationVar(&c.Hold, "hold", 60*time.Second, "hold after the ramp")
	fs.StringVar(&c.Sources, "sources", "127.0.0.2-127.0.0.60", "wsload -sources")
	fs.Float64Var(&c.MinFreeG, "min-free-gib", 16, "refuse to start with less MemAvailable")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	if c.Procs*c.MaxConns < c.Conns {
		return fmt.Errorf("wsbench: %d procs × %d max-conns < %d connections", c.Procs, c.MaxConns, c.Conns)
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	e, err := prepare(ctx, absRoot, "wspush", false)
	if err != nil {
		return err
	}
	e.ServerCPUs, e.LoadCPUs, e.Conns, e.Rate, e.Rounds = *serverCPUs, *loadCPUs, c.Conns, c.Rate, 1
	f := &scenario.File{Schema: scenario.Schema, Scenario: "onemillion", Mode: "onemillion", Started: time.Now().UTC(), Env: env.Collect(absRoot),
		Pinning: scenario.Pinning{Server: e.ServerCPUs, Load: e.LoadCPUs}, Conns: c.Conns, Rate: c.Rate, Rounds: 1, Targets: []string{"wspush"}}
	r, runErr := scenario.OneMillion(ctx, e, c)
	if runErr != nil && r != nil {
		r.Err = runErr.Error()
	}
	f.OneMillion = r
	f.Finished = time.Now().UTC()
	dir := abs(absRoot, *outDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	path := filepath.Join(dir, f.Started.Format("2006-01-02T1504")+"-onemillion.json")
	if err := f.Save(path); err != nil {
		return err
	}
	e.Log("wrote %s: held %d, %.0f msgs/s, lag p99 %.1f ms, gaps %d, rss %.0f B/conn, slab %.0f B/conn",
		path, r.Held, r.Steady.MsgsPerSec, r.Steady.LagP99MS, r.Gaps, r.RSSPerConn, r.SlabPerConn)
	if *md != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		if err := writeReport(abs(absRoot, *md), abs(absRoot, "docs/img"), files); err != nil {
			return err
		}
	}
	return runErr
}
