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

// cmdCluster is `wsbench cluster`: one publish at a time to (by default)
// 1,000,000 clients spread over 60 wspush nodes joined by NATS JetStream;
// the work is scenario.Cluster.
func cmdCluster(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	var c scenario.ClusterConfig
	root := fs.String("root", ".", "repository root (bin/, go.mod for the nats-server build)")
	outDir := fs.String("out", "bench/results", "results directory")
	md := fs.String("md", "docs/benchmarks.md", "regenerate this report after the run (\"\" = don't)")
	noBuild := fs.Bool("no-build", false, "do not go build bin/wspush, bin/wsload first")
	fs.IntVar(&c.Conns, "conns", 1_000_000, "subscribers of the one topic (0 = default)")
	fs.IntVar(&c.Procs, "procs", 60, "wspush nodes, ports -port… and -admin-port… (0 = default)")
	fs.IntVar(&c.MaxConns, "max-conns", 17000, "-max-conns per node (0 = default)")
	fs.IntVar(&c.Rate, "rate", 4000, "ramp, connections per second (0 = default)")
	fs.IntVar(&c.Publishes, "publishes", 2, "publishes, one at a time, through node 0 (0 = default)")
	fs.DurationVar(&c.PubEvery, "pub-every", time.Minute, "time between publishes (0 = default)")
	fs.DurationVar(&c.PubAfter, "pub-after", 0, "first publish this long after wsload starts (0 = conns/rate × 1.25 + 20s)")
	fs.DurationVar(&c.Settle, "settle", 30*time.Second, "run on this long after the last publish's slot (0 = default)")
	fs.DurationVar(&c.Grace, "grace", time.Minute, "wsload -grace: wait for in-flight deliveries, at most 1m (0 = default)")
	fs.StringVar(&c.Sources, "sources", "127.0.0.2-127.0.0.60", "wsload -sources (\"\" = default)")
	fs.Float64Var(&c.MinFreeG, "min-free-gib", 16, "refuse to start with less MemAvailable (0 = default)")
	fs.IntVar(&c.Port, "port", 9000, "first node's WebSocket port (0 = default)")
	fs.IntVar(&c.AdminPort, "admin-port", 10000, "first node's admin port (0 = default)")
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
	e.Log("cluster: %d connections over %d nodes, %d publishes every %s from %s on; wsload -duration %s",
		c.Conns, c.Procs, c.Publishes, c.PubEvery, c.PubAfter, c.Duration())
	f := &scenario.File{Schema: scenario.Schema, Scenario: "cluster", Mode: "cluster", Started: time.Now().UTC(), Env: env.Collect(absRoot),
		Conns: c.Conns, Rate: c.Rate, Rounds: 1, Targets: []string{"wspush"}}
	r, runErr := scenario.Cluster(ctx, e, c)
	if runErr != nil {
		r.Err = runErr.Error()
	}
	f.Cluster = r
	f.Finished = time.Now().UTC()
	dir := abs(absRoot, *outDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	path := filepath.Join(dir, f.Started.Format("2006-01-02T1504")+"-cluster.json")
	if r.Wsload == nil {
		// nothing measured: keep the record, out of the report's glob
		f.Notes = append(f.Notes, "incomplete: "+r.Err)
		path += ".partial"
	}
	if err := f.Save(path); err != nil {
		return err
	}
	e.Log("wrote %s: %d publishes, %d of %d deliveries (lost %d, gaps %d, history_gone %d), end-to-end p50 %.0f / p99 %.0f / max %.0f ms, all reached: %v",
		path, r.PublishesSent, r.Deliveries, r.Expected, r.Lost, r.Gaps, r.HistoryGone, r.LatencyMS.P50, r.LatencyMS.P99, r.LatencyMS.Max, r.AllReached)
	if *md != "" && r.Wsload != nil {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		if err := writeReport(abs(absRoot, *md), abs(absRoot, "docs/img"), files); err != nil {
			return err
		}
	}
	return runErr
}
