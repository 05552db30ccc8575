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
	"syscall"
	"time"

	"github.com/pkg/profile"

	"wspush/server/internal/admin"
	"wspush/server/internal/bus"
	"wspush/server/internal/demo"
	"wspush/server/internal/gateway"
	"wspush/server/internal/hub"
	"wspush/server/internal/metrics"
	"wspush/server/internal/pubapi"
	"wspush/server/wire"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
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
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String(), "clients", n.hub.Len(), "drain_rate", cfg.DrainRate)
	case err := <-n.adminErr:
		log.Error("admin listener failed", "err", err)
	}
	left := n.shutdown(cfg)
	log.Info("stopped", "clients_left_at_timeout", left)
	return nil
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
	gw       *gateway.Gateway
	admin    *admin.Server
	hubDone  chan struct{}
	adminErr chan error
}

// start wires and starts a server; it returns once both listeners are up.
func start(cfg Config) (*node, error) {
	n := &node{hubDone: make(chan struct{}), adminErr: make(chan error, 1)}
	var h *hub.Hub
	n.m = metrics.New(func() int64 { return h.Len() })
	h, err := hub.New(cfg.Hub, n.m)
	if err != nil {
		return nil, fmt.Errorf("wspush: %w", err)
	}
	n.hub = h
	gcfg := cfg.Gateway
	gcfg.Page = demo.Handler()
	maxUnsent := cfg.Hub.MaxUnsent
	if maxUnsent <= 0 {
		maxUnsent = hub.DefaultMaxUnsent
	}
	n.bus = bus.New(cfg.Bus, h)
	if n.gw, err = gateway.New(gcfg, h, n.bus, n.m, maxUnsent); err != nil {
		return nil, fmt.Errorf("wspush: %w", err)
	}
	n.admin = admin.New(n.m, h.Len, n.healthy)
	pubapi.Register(n.admin, n.bus)
	if err := n.admin.Listen(cfg.AdminAddr); err != nil {
		return nil, fmt.Errorf("wspush: %w", err)
	}
	if err := n.gw.Start(); err != nil {
		_ = n.admin.Shutdown(context.Background())
		return nil, fmt.Errorf("wspush: %w", err)
	}
	go func() {
		defer close(n.hubDone)
		h.Run()
	}()
	go n.bus.Run(time.Minute, n.hubDone)
	go func() {
		if err := n.admin.Serve(); err != nil {
			n.adminErr <- err
		}
	}()
	return n, nil
}

var errDraining = errors.New("draining for shutdown")

func (n *node) healthy() error {
	select {
	case <-n.hubDone:
		return errDraining
	default:
	}
	return nil
}

// shutdown stops accepting, closes every client with 1001 at the drain
// rate, waits up to the shutdown timeout, then stops everything. It returns
// how many clients were still connected when the timeout ran out.
func (n *node) shutdown(cfg Config) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	n.gw.StopAccepting()
	_ = n.hub.Drain(ctx, cfg.DrainRate, wire.CloseGoingAway, "server shutting down")
	left := n.hub.Len()
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelClose()
	_ = n.gw.Shutdown(closeCtx)
	n.hub.Stop()
	<-n.hubDone
	_ = n.admin.Shutdown(closeCtx)
	return left
}
