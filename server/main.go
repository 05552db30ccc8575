// Command wspush is a WebSocket push server for very many concurrent
// clients: each gets a welcome, then a tick on a fixed interval from a
// timing wheel, and answers to what it sends. main parses flags into a
// Config, wires the packages together and handles signals; the logic lives
// under internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/profile"

	"wspush/client"
	"wspush/server/internal/admin"
	"wspush/server/internal/bus"
	"wspush/server/internal/demo"
	"wspush/server/internal/gateway"
	"wspush/server/internal/hub"
	"wspush/server/internal/memtrim"
	"wspush/server/internal/metrics"
	"wspush/server/internal/natsbus"
	"wspush/server/internal/presence"
	"wspush/server/internal/pubapi"
	"wspush/server/internal/serverapi"
	"wspush/server/internal/snapshot"
	"wspush/server/internal/webhook"
)

func main() {
	// -h and -version print to stdout and exit 0; a bad flag is one line
	// on stderr and exit 2.
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stdout)
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errVersion) {
		os.Exit(0)
	}
	if errors.Is(err, errHealthcheck) {
		os.Exit(healthcheck(cfg.AdminAddr, os.Stdout))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(cfg, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(cfg Config, logOut io.Writer) error {
	log := slog.New(slog.NewTextHandler(logOut, nil))
	routeNBIOLogs(log)
	cfg.Gateway.Logger, cfg.NATS.Logger = log, log
	burstGC := cfg.BurstGCPercent
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	} else {
		burstGC = -1 // GOGC is the operator's: left alone
	}
	// After a connect ramp, the heap's free pages go back to the OS at once
	// (memtrim: −54 B of RSS per idle connection); steady pushing allocates
	// nothing and never trims. During the ramp the GC runs less often
	// (-burst-gc-percent).
	trimCtx, stopTrim := context.WithCancel(context.Background())
	defer stopTrim()
	go memtrim.Run(trimCtx, memtrim.Config{BurstGCPercent: burstGC})
	if cfg.Profile != "" {
		defer profile.Start(profileMode(cfg.Profile), profile.ProfilePath(cfg.ProfileDir), profile.NoShutdownHook, profile.Quiet).Stop()
	}
	n, err := start(cfg)
	if err != nil {
		return err
	}
	log.Info("listening", "ws", n.gw.Addr().String(), "admin", n.admin.Addr().String(),
		"push_interval", n.hub.PushInterval().String(), "pid", os.Getpid())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	var failed error
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String(), "clients", n.hub.Len(), "drain_rate", cfg.DrainRate)
	case f := <-n.group.failed:
		log.Error(f.name+" failed", "err", f.err)
		failed = f.err
	}
	// A second signal cuts the drain short.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if s, ok := <-sig; ok {
			log.Info("second signal: closing the remaining clients now", "signal", s.String())
			cancel()
		}
	}()
	left := n.shutdownCtx(ctx, cfg)
	log.Info("stopped", "clients_left_at_timeout", left)
	return failed
}

func profileMode(name string) func(*profile.Profile) {
	switch name {
	case "mem":
		return profile.MemProfile
	case "alloc":
		return profile.MemProfileAllocs
	case "block":
		return profile.BlockProfile
	case "mutex":
		return profile.MutexProfile
	case "trace":
		return profile.TraceProfile
	case "goroutine":
		return profile.GoroutineProfile
	default:
		return profile.CPUProfile
	}
}

// node is a running server: the hub, its WebSocket gateway and the admin
// listener.
type node struct {
	m        *metrics.Metrics
	hub      *hub.Hub
	bus      *bus.Bus
	cluster  *natsbus.Bus    // nil unless -nats
	webhooks *webhook.Sender // nil unless -webhook-url
	presence *presence.Tracker
	gw       *gateway.Gateway
	admin    *admin.Server
	group    *group // every component's Run; group.go
	draining atomic.Bool
	stopOnce sync.Once
	left     int64 // clients left when the drain ended; set by shutdown
}

// busAPI is what the gateway and the publish API are given: the in-memory
// bus, or the NATS-backed one in a cluster.
type busAPI interface {
	gateway.Bus
	pubapi.Bus
}

// start wires and starts a server; it returns once both listeners are up.
// Components join the group as soon as they hold a resource, in the order
// they must start; shutdown stops them in the reverse order (stop).
func start(cfg Config) (*node, error) {
	routeNBIOLogs(slog.Default())
	n := &node{group: newGroup()}
	var h *hub.Hub
	n.m = metrics.New(func() int64 { return h.Len() })
	h, err := hub.New(cfg.Hub, n.m)
	if err != nil {
		return nil, fmt.Errorf("wspush: %w", err)
	}
	n.hub = h
	gcfg := cfg.Gateway
	gcfg.Script = client.Handler()
	maxUnsent := cfg.Hub.MaxUnsent
	if maxUnsent <= 0 {
		maxUnsent = hub.DefaultMaxUnsent
	}
	if n.bus, err = n.newBus(cfg, h); err != nil {
		return nil, err
	}
	n.m.SetHistory(n.bus.HistoryBytes, n.bus.HistoryEvictions)
	n.admin = admin.New(n.m, h.Len, n.healthy)
	n.admin.SetToken(cfg.AdminToken)
	if err := n.admin.Listen(cfg.AdminAddr); err != nil {
		_ = n.group.stop() // with -state-dir: saves the restored state again
		return nil, fmt.Errorf("wspush: %w", err)
	}
	// The demo page shows the curl command that publishes through the admin listener.
	gcfg.Page = demo.Handler(demo.Config{AdminAddr: n.admin.Addr().String(), AdminToken: cfg.AdminToken != ""})
	n.group.add("admin listener", n.admin.Run)
	fail := func(err error) (*node, error) {
		_ = n.group.stop()
		return nil, fmt.Errorf("wspush: %w", err)
	}
	if err := n.startWebhooks(cfg, &gcfg); err != nil {
		return fail(err)
	}
	var api busAPI = n.bus
	if cfg.NATS.URLs != "" {
		if n.cluster, err = natsbus.New(cfg.NATS, n.bus, h.Local(), n.m.Registry()); err != nil {
			return fail(err)
		}
		n.group.add("cluster", n.cluster.Run)
		api = n.cluster
	}
	if err := n.startPresence(cfg); err != nil {
		return fail(err)
	}
	if n.gw, err = gateway.New(gcfg, h, api, n.m, maxUnsent); err != nil {
		return fail(err)
	}
	if n.gw.AuthEnabled() {
		n.m.SetUsers(n.gw.Users)
	}
	pubapi.Register(n.admin, api)
	serverapi.Register(n.admin, n.gw, n.bus) // history: this node's copy
	n.group.add("bus sweeper", n.bus.Run)
	n.group.add("hub", h.Run)
	if err := n.gw.Start(); err != nil {
		return fail(err)
	}
	n.group.add("gateway", n.gw.Run)
	n.group.start()
	return n, nil
}

// newBus returns the bus: with -state-dir the one saved at the last
// shutdown (or a new one), and the group's first member saves it again on
// shutdown, stopped after every member that can publish (the gateway, the
// cluster, the admin listener with the publish API).
func (n *node) newBus(cfg Config, h *hub.Hub) (*bus.Bus, error) {
	if cfg.State.Dir == "" {
		return bus.New(cfg.Bus, h.Local()), nil
	}
	st, err := snapshot.Open(cfg.State, cfg.Gateway.Logger)
	if err != nil {
		return nil, fmt.Errorf("wspush: %w", err)
	}
	b, err := st.Restore(cfg.Bus, h.Local(), time.Now())
	if err != nil {
		return nil, fmt.Errorf("wspush: %w", err)
	}
	n.group.add("state", st.Run)
	return b, nil
}

var errDraining = errors.New("draining for shutdown")

func (n *node) healthy() error {
	if n.draining.Load() {
		return errDraining
	}
	if n.cluster != nil {
		return n.cluster.Healthy()
	}
	return nil
}

// shutdown stops accepting, closes every client with 1001 at the drain
// rate, waits up to the shutdown timeout, then stops everything. It returns
// how many clients were still connected when the timeout ran out.
func (n *node) shutdown(cfg Config) int64 { return n.shutdownCtx(context.Background(), cfg) }

// shutdownCtx is shutdown where cancelling ctx (a second signal) cuts the
// drain short.
func (n *node) shutdownCtx(ctx context.Context, cfg Config) int64 {
	n.stopOnce.Do(func() { n.left = n.stop(ctx, cfg) })
	return n.left
}

func (n *node) stop(ctx context.Context, cfg Config) int64 {
	n.draining.Store(true)
	drainCtx, cancel := context.WithTimeout(ctx, cfg.ShutdownTimeout)
	defer cancel()
	n.gw.StopAccepting()
	_ = n.hub.Drain(drainCtx, cfg.DrainRate)
	left := n.hub.Len()
	// The gateway (every connection closed, nbio stopped: at most 2 s), the
	// hub, the bus's sweeper, the cluster connection, the admin listener
	// (requests in flight: at most 2 s).
	_ = n.group.stop()
	return left
}
