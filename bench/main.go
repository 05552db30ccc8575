// Command wsbench is wspush's benchmark harness: it runs wspush and the
// peer servers in bench/peers side by side under the same load (bin/wsload)
// and writes bench/results/<date>-<scenario>.json and docs/benchmarks.md.
//
//	wsbench run -quick|-full [-out bench/results] [-md docs/benchmarks.md]
//	wsbench report [-o docs/benchmarks.md] [-img docs/img] bench/results/*.json
//	wsbench onemillion [-conns 1000000 -procs 60 -rate 5000 ...]
//	wsbench cluster [-conns 1000000 -procs 60 -publishes 2 -pub-every 1m ...]
//	wsbench -quick | -full            (shorthand for run)
//
// `run` measures and then regenerates the report from every file in the
// results directory (the newest file of each scenario wins); `report`
// only renders. Every process wsbench starts runs in its own process group
// and is killed when wsbench ends, also on Ctrl-C.
//
// Concurrency: main runs one measurement at a time; the signal handler only
// cancels the context, and a deferred KillAll reaps whatever is left.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"wspush/bench/internal/target"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:])
	stop()
	if n := target.KillAll(); n > 0 {
		fmt.Fprintf(os.Stderr, "wsbench: killed %d leftover process group(s)\n", n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		usage()
		return fmt.Errorf("wsbench: no command")
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:])
	case "report":
		return cmdReport(args[1:])
	case "onemillion":
		return cmdOneMillion(ctx, args[1:])
	case "bcast1m":
		return cmdBcast1M(ctx, args[1:])
	case "cluster":
		return cmdCluster(ctx, args[1:])
	case "__bcast":
		return cmdBcast(ctx, args[1:])
	case "-quick", "--quick", "-full", "--full":
		return cmdRun(ctx, args)
	case "-h", "--help", "help":
		usage()
		return nil
	}
	usage()
	return fmt.Errorf("wsbench: unknown command %q", args[0])
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  wsbench run -quick|-full [flags]   measure, write bench/results/<date>-<scenario>.json, regenerate docs/benchmarks.md
  wsbench report [flags] files...    render markdown (stdout or -o) and charts from result files
  wsbench onemillion [flags]         1,000,000 connections to 60 wspush processes, result into bench/results
  wsbench cluster [flags]            one publish at a time to 1,000,000 clients over 60 wspush nodes joined by
                                     a nats-server (built from go.mod), result into bench/results
  wsbench bcast1m -target T [flags]  one broadcast at a time to 1,000,000 clients over 60 processes of
                                     floor, wspush or wspush-nats, result into bench/results
  wsbench -quick | -full             shorthand for run
run "wsbench <command> -h" for the flags
`)
}
