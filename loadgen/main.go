// Command wsload is wspush's WebSocket load generator; see docs/loadgen.md.
//
//	wsload <connect|ticks|publish|churn|echo> [flags]
//	wsload report [-format text|md|json|png] [-o path] result.json...
//
// main turns flags into a scenario.Config and dispatches; the work is done
// in internal/engine (client connections on nbio pollers), internal/scenario
// (one process's run), internal/workers (several processes), result
// (result.json and merging; public: wsbench reads the same schema) and
// internal/report (rendering).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"wspush/loadgen/internal/report"
	"wspush/loadgen/internal/scenario"
	"wspush/loadgen/internal/workers"
	"wspush/loadgen/result"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(2)
	}
}

const usage = `usage: wsload <scenario> [flags]     scenarios: connect ticks publish churn echo
       wsload report [-format text|md|json|png] [-o path] result.json [more.json...]
run "wsload <scenario> -h" for the flags`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case workers.Command:
		return workers.Serve(ctx, stdin, stdout, stderr)
	case "report":
		return report.Main(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	cfg, procsFlag, out, quiet, err := parseFlags(args[0], args[1:], stderr)
	if err != nil {
		return err
	}
	procs, err := workers.Procs(procsFlag, cfg.Conns)
	if err != nil {
		return fmt.Errorf("wsload: %w", err)
	}
	var log io.Writer = stderr
	if quiet {
		log = io.Discard
	}
	fmt.Fprintf(log, "wsload %s: %d connections to %s at %.0f/s for %s, %d process(es), %d per process max\n",
		cfg.Scenario, cfg.Conns, cfg.URL, cfg.Rate, cfg.Duration, procs, workers.PerProcess())
	var res *result.Result
	if procs == 1 {
		cfg.Procs, cfg.TotalConns, cfg.Publisher = 1, cfg.Conns, true
		r, err := scenario.New(cfg)
		if err != nil {
			return fmt.Errorf("wsload: %w", err)
		}
		r.Log = log
		if res, err = r.Execute(ctx); err != nil {
			return err
		}
	} else {
		if res, err = workers.Run(ctx, cfg, procs, log); err != nil {
			return fmt.Errorf("wsload: %w", err)
		}
	}
	if err := report.Text(stdout, []*result.Result{res}); err != nil {
		return err
	}
	if out != "" {
		if err := result.Save(out, res); err != nil {
			return fmt.Errorf("wsload: %w", err)
		}
		fmt.Fprintf(log, "wrote %s\n", out)
	}
	return nil
}

func parseFlags(name string, args []string, stderr io.Writer) (cfg scenario.Config, procs, out string, quiet bool, err error) {
	cfg.Scenario = name
	known := false
	for _, n := range scenario.Names {
		known = known || n == name
	}
	if !known {
		return cfg, "", "", false, fmt.Errorf("wsload: unknown scenario %q\n%s", name, usage)
	}
	fs := flag.NewFlagSet("wsload "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8080/ws", "server URL(s): comma list, ports may be a range (ws://127.0.0.1:9000-9003/ws)")
	fs.StringVar(&cfg.Admin, "admin", "http://127.0.0.1:8081", "admin API base URL (publish, churn)")
	fs.IntVar(&cfg.Conns, "conns", 1000, "connections to open")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "connections opened per second (open loop)")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "total run time, ramp included; wsload stops by itself")
	fs.StringVar(&cfg.Sources, "sources", "", "source addresses: 127.0.0.2-127.0.0.60, CIDR or comma list; empty = kernel's choice")
	fs.StringVar(&procs, "procs", "auto", "worker processes: auto (by RLIMIT_NOFILE) or a number")
	fs.StringVar(&out, "out", "", "write result.json (schema wsload/v1) here")
	fs.IntVar(&cfg.Pollers, "pollers", 1, "nbio poller goroutines per process")
	fs.DurationVar(&cfg.ReadBatch, "read-batch", 0, "a poller woken from an idle wait pauses this long (0..10ms) before reading, to read what arrives meanwhile in one batch: fewer wake-ups per message, at most this much more lag; 0 = read at once")
	fs.BoolVar(&cfg.StdDial, "std-dial", false, "dial every connection with Go's net.Dialer on dialer goroutines (the old path, for comparison) instead of wsload's raw non-blocking dial")
	fs.IntVar(&cfg.Dialers, "dialers", 64, "concurrent connects per process")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "connect + upgrade timeout")
	fs.DurationVar(&cfg.Grace, "grace", 3*time.Second, "after -duration, wait up to this long for in-flight messages (publish, churn, echo)")
	fs.IntVar(&cfg.Topics, "topics", 10, "topics (publish, churn); connection i subscribes to topic i mod K")
	fs.Float64Var(&cfg.PubRate, "pub-rate", 10, "publishes per second through the admin API (publish, churn)")
	fs.DurationVar(&cfg.PubAfter, "pub-after", 0, "first publish this long after the start, e.g. after the ramp (publish, churn)")
	fs.IntVar(&cfg.PubCount, "pub-count", 0, "stop after this many publishes; 0 = until -duration (publish, churn)")
	fs.Float64Var(&cfg.PingRate, "ping-rate", 1000, "pings per second over all connections (echo)")
	fs.Float64Var(&cfg.ChurnRate, "churn-rate", 100, "disconnect+resume per second (churn)")
	fs.IntVar(&cfg.Retries, "retries", 0, "dial a slot again up to this many times after a failed connect (not after fd_limit or port_exhaustion); 0 = never")
	fs.DurationVar(&cfg.RetryBackoff, "retry-backoff", time.Second, "wait before the first retry, doubling per attempt up to 30s, jittered ×[0.5,1.5); a server's Retry-After takes precedence")
	fs.BoolVar(&cfg.Broadcast, "broadcast", false, "publish: do not subscribe; count and time the server's broadcasts (topic \"\"), which someone else sends (wsbench bcast1m)")
	fs.BoolVar(&cfg.Presence, "presence", false, "subscribe with \"presence\":true and check the subscriber counts ticks carry (publish, churn)")
	fs.StringVar(&cfg.Transport, "transport", "", "ws, or sse: read the server's Server-Sent Events stream (connect, ticks, publish); default: sse for an http:// -url (http://127.0.0.1:8080/sse), else ws")
	fs.BoolVar(&quiet, "quiet", false, "no live line")
	if err = fs.Parse(args); err != nil {
		return
	}
	if fs.NArg() > 0 {
		err = fmt.Errorf("wsload: unexpected argument %q", fs.Arg(0))
		return
	}
	if err = loopbackHTTP(cfg.Admin); err != nil {
		return
	}
	if err = cfg.Validate(); err != nil {
		err = fmt.Errorf("wsload: %w", err)
	}
	return
}

// loopbackHTTP refuses an admin URL outside 127.0.0.0/8.
func loopbackHTTP(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("wsload: -admin must be http://127.x.x.x:port, got %q", s)
	}
	if h := u.Hostname(); !strings.HasPrefix(h, "127.") && h != "localhost" {
		return fmt.Errorf("wsload: -admin must be a loopback address, got %q", s)
	}
	return nil
}
