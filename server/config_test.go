package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"wspush/server/internal/hub"
)

// Validation reports every problem, always in the same order, on one line.
func TestConfigErrorsInFixedOrder(t *testing.T) {
	args := []string{"-push-interval", "1ms", "-ping-interval", "2ms", "-idle-timeout", "3ms", "-handshake-timeout", "4ms",
		"-max-conns-per-ip", "-1", "-max-history-bytes", "0"}
	want := "wspush: -push-interval must be 0 or at least 10ms, not 1ms; -ping-interval must be 0 or at least 10ms, not 2ms; " +
		"-idle-timeout must be 0 or at least 10ms, not 3ms; -handshake-timeout must be at least 10ms, not 4ms; " +
		"-history-ttl, -max-publish-bytes and -max-history-bytes must be positive; " +
		"-max-conns-per-ip, -accept-rate and -max-msg-rate must not be negative"
	for i := 0; i < 50; i++ {
		_, err := parseConfig(args, func(string) string { return "" }, io.Discard)
		if err == nil || err.Error() != want {
			t.Fatalf("run %d: error\n%v\nwant\n%s", i, err, want)
		}
	}
}

// A flag's documented 0 ("off", "no limit") reaches the Config as its
// negative off; a flag's 0 "default" stays 0.
func TestConfigZeroFlagsMapToOneScheme(t *testing.T) {
	cfg, err := parseConfig([]string{"-push-interval", "0", "-ping-interval", "0", "-idle-timeout", "0", "-accept-rate", "0",
		"-max-msg-rate", "0", "-max-client-pub-rate", "0", "-max-conns-per-ip", "0", "-max-conns", "0", "-shards", "0", "-accept-burst", "0",
		"-allowed-origins", "https://a.example,https://b.example"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h, g := cfg.Hub, cfg.Gateway
	if h.PushInterval != hub.Disabled || h.PingInterval != hub.Disabled || h.IdleTimeout != hub.Disabled {
		t.Errorf("hub intervals %v %v %v, want hub.Disabled", h.PushInterval, h.PingInterval, h.IdleTimeout)
	}
	if g.AcceptRate >= 0 || g.MaxMsgRate >= 0 || g.MaxClientPubRate >= 0 || g.MaxConnsPerIP >= 0 {
		t.Errorf("gateway limits %d %d %d %d, want negative (off)", g.AcceptRate, g.MaxMsgRate, g.MaxClientPubRate, g.MaxConnsPerIP)
	}
	if g.MaxConns != 0 || h.Shards != 0 || g.AcceptBurst != 0 {
		t.Errorf("defaults %d %d %d, want 0", g.MaxConns, h.Shards, g.AcceptBurst)
	}
	if strings.Join(g.AllowedOrigins, " ") != "https://a.example https://b.example" {
		t.Errorf("origins %q", g.AllowedOrigins)
	}
	if cfg.NATS.HistorySize != cfg.Bus.HistorySize || cfg.NATS.HistoryTTL != cfg.Bus.HistoryTTL || cfg.NATS.Name == "" {
		t.Errorf("nats %+v", cfg.NATS)
	}
	if d, _ := parseConfig(nil, func(string) string { return "" }, io.Discard); d.Hub.PushInterval != hub.DefaultPushInterval ||
		d.ShutdownTimeout != 30*time.Second || d.DrainRate != 10_000 {
		t.Errorf("defaults %+v", d)
	}
}
