package workers

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"wspush/loadgen/internal/fakews"
	"wspush/loadgen/internal/scenario"
)

// TestMain lets the test binary act as a worker process: Run starts
// os.Executable() with the worker subcommand, which is this binary here.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Command {
		if err := Serve(context.Background(), os.Stdin, os.Stdout, os.Stderr); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSplit(t *testing.T) {
	cfg := scenario.Config{Conns: 10, Rate: 90, PingRate: 30}
	total := 0
	for w := range 3 {
		c := Split(cfg, w, 3)
		total += c.Conns
		if c.Offset != w || c.Stride != 3 || c.Rate != 30 || c.PingRate != 10 || c.Publisher != (w == 0) {
			t.Errorf("worker %d: %+v", w, c)
		}
	}
	if total != 10 {
		t.Fatalf("split %d connections, want 10", total)
	}
	if n, err := Procs("auto", 3*PerProcess()+1); err != nil || n != 4 {
		t.Fatalf("auto procs = %d, %v", n, err)
	}
	if _, err := Procs("1", PerProcess()+1); err == nil {
		t.Fatal("one process over the fd limit accepted")
	}
}

func TestTwoWorkersMergeExactly(t *testing.T) {
	script := []fakews.Step{{Welcome: true}}
	for _, s := range []uint64{1, 2, 4, 4, 3} { // gap filled late: reorder 1, dup 1
		script = append(script, fakews.Step{Tick: s, Late: 20 * time.Millisecond})
	}
	srv, err := fakews.Start(script)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := scenario.Config{Scenario: "ticks", URL: srv.URL(), Conns: 9, Rate: 500,
		Duration: 1500 * time.Millisecond, Pollers: 1, Dialers: 2}
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg, 2, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if res.Params.Procs != 2 || res.ConnsTarget != 9 || res.ConnsEstablished != 9 || srv.Conns.Load() != 9 {
		t.Fatalf("procs %d target %d established %d server saw %d", res.Params.Procs, res.ConnsTarget, res.ConnsEstablished, srv.Conns.Load())
	}
	if res.Messages != 45 || res.Welcomes != 9 || res.Gaps != 0 || res.Reorders != 9 || res.Duplicates != 9 {
		t.Fatalf("messages %d welcomes %d gaps %d reorders %d dups %d", res.Messages, res.Welcomes, res.Gaps, res.Reorders, res.Duplicates)
	}
	if res.LagMS.Count != 45 || res.LagMS.P50 < 20 {
		t.Fatalf("lag %+v", res.LagMS)
	}
	if !bytes.Contains(log.Bytes(), []byte("conns 9/9")) {
		t.Errorf("no merged live line with all 9 connections:\n%s", log.String())
	}
}

// -retries reaches the workers (Config as JSON) and their retries are
// summed in the merged result.
func TestWorkersRetry(t *testing.T) {
	srv, err := fakews.StartWith([]fakews.Step{{Welcome: true}}, fakews.Options{Refuse: 2, RetryAfter: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := scenario.Config{Scenario: "connect", URL: srv.URL(), Conns: 6, Rate: 500,
		Duration: 1500 * time.Millisecond, Pollers: 1, Dialers: 2, Retries: 3, RetryBackoff: 20 * time.Millisecond}
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg, 2, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if res.ConnsEstablished != 6 || res.Errors["rejected"] != 2 || res.Retries != 2 || res.Params.Retries != 3 {
		t.Fatalf("established %d rejected %d retries %d params.retries %d, want 6 2 2 3\n%s",
			res.ConnsEstablished, res.Errors["rejected"], res.Retries, res.Params.Retries, log.String())
	}
}
