package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"wspush/server/internal/admin"
	"wspush/server/internal/auth"
	"wspush/server/internal/bus"
	"wspush/server/internal/gateway"
	"wspush/server/internal/hub"
	"wspush/server/internal/natsbus"
)

// Config is everything the flags set.
type Config struct {
	Gateway         gateway.Config
	Hub             hub.Config
	Bus             bus.Config
	AdminAddr       string
	DrainRate       int
	ShutdownTimeout time.Duration
	Profile         string
	ProfileDir      string
	NATS            natsbus.Config
	GCPercent       int
	AdminToken      string
}

var profileModes = []string{"cpu", "mem", "alloc", "block", "mutex", "trace", "goroutine"}

// parseConfig reads flags from args, then fills any flag not given there
// from the environment as WSPUSH_<FLAG> (dashes as underscores).
func parseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var (
		c                                   Config
		push, ping, idle                    time.Duration
		maxWrite                            size
		maxMsg                              size
		shutdownTimeout                     time.Duration
		welcome, pushText, addr, adminAddr  string
		maxConns, drainRate, maxBad, shards int
		pollers, maxSubs, histSize, maxTop  int
		reusePort, clientPub, compression   bool
		histTTL, tcpKeepAlive               time.Duration
		maxPub                              size
	)
	maxPub = bus.DefaultMaxDataBytes
	maxWrite, maxMsg = hub.DefaultMaxUnsent, gateway.DefaultMaxMessageBytes
	fs := flag.NewFlagSet("wspush", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a bad flag is one line; -h prints the defaults
	fs.StringVar(&addr, "addr", gateway.DefaultAddr, "WebSocket listen address (the demo page is at /, WebSocket at /ws)")
	fs.StringVar(&adminAddr, "admin-addr", admin.DefaultAddr, "admin listen address: /healthz, /metrics, /v1/stats, /debug/pprof/")
	fs.BoolVar(&reusePort, "reuseport", false, "set SO_REUSEPORT so several processes can share -addr")
	fs.DurationVar(&tcpKeepAlive, "tcp-keepalive", 0, "kernel TCP keepalive period of client sockets; 0 = off (pings and -idle-timeout detect dead peers)")
	fs.DurationVar(&push, "push-interval", hub.DefaultPushInterval, "period of each client's tick push; 0 disables pushes")
	fs.StringVar(&pushText, "push-text", "", "text carried by every tick (none by default)")
	fs.StringVar(&welcome, "welcome", gateway.DefaultWelcome, "text of the welcome message")
	fs.DurationVar(&ping, "ping-interval", hub.DefaultPingInterval, "WebSocket ping period per client; 0 disables pings")
	fs.DurationVar(&idle, "idle-timeout", hub.DefaultIdleTimeout, "close a client from which nothing arrived for this long; 0 disables")
	fs.IntVar(&maxConns, "max-conns", 0, fmt.Sprintf("connection cap, over it clients get HTTP 503; 0 = RLIMIT_NOFILE minus a reserve for admin, NATS and files (max(64, limit/64)): %d here", gateway.DefaultMaxConns()))
	var maxHeader size = gateway.DefaultMaxHeaderBytes
	fs.Var(&maxHeader, "max-header-bytes", "largest HTTP request header before the upgrade (bytes, or with KiB/MiB/GiB); over it HTTP 431 and close")
	handshakeTimeout := gateway.DefaultHandshakeTimeout
	fs.DurationVar(&handshakeTimeout, "handshake-timeout", handshakeTimeout, "longest time from accept to a complete WebSocket upgrade; slower connections are closed")
	fs.Var(&maxMsg, "max-message-bytes", "largest inbound message (bytes, or with KiB/MiB/GiB); larger ones close with 1009")
	fs.Var(&maxWrite, "max-write-buffer", "cap on a client's unsent bytes (bytes, or with KiB/MiB/GiB); over it the client is dropped as slow (4008)")
	fs.IntVar(&maxBad, "max-bad-messages", gateway.DefaultMaxBadMessages, "bad messages in a row before a client is closed with 1008")
	fs.IntVar(&drainRate, "drain-rate", 10_000, "closes per second when draining on shutdown")
	fs.DurationVar(&shutdownTimeout, "shutdown-timeout", 30*time.Second, "longest wait for clients to leave on shutdown")
	fs.IntVar(&shards, "shards", 0, "timing-wheel shards; 0 = one per core")
	fs.IntVar(&pollers, "pollers", 0, "nbio poller goroutines; 0 = half the cores, at least 1")
	fs.IntVar(&maxSubs, "max-subs", gateway.DefaultMaxSubs, "subscriptions per connection")
	fs.BoolVar(&clientPub, "client-publish", false, "let clients publish with pub frames (publishers use the admin API otherwise)")
	fs.BoolVar(&compression, "compression", false, "offer permessage-deflate; published messages go compressed (once for all) to clients that accept it")
	fs.IntVar(&histSize, "history-size", bus.DefaultHistorySize, "messages each topic keeps for resume")
	fs.DurationVar(&histTTL, "history-ttl", bus.DefaultHistoryTTL, "how long a message stays in a topic's history")
	fs.IntVar(&maxTop, "max-topics", bus.DefaultMaxTopics, "cap on the number of topics")
	fs.Var(&maxPub, "max-publish-bytes", "largest published value (bytes, or with KiB/MiB/GiB)")
	histBytes := size(bus.DefaultMaxHistoryBytes)
	fs.Var(&histBytes, "max-history-bytes", "cap on the history of all topics together (bytes, or with KiB/MiB/GiB); over it the oldest messages leave first and resumes into them get history_gone")
	var pubRate, pubBurst int
	fs.IntVar(&pubRate, "max-client-pub-rate", gateway.DefaultMaxPubRate, "pub messages per second per connection (with -client-publish); over it the pub gets error \"rate_limited\"; 0 = no limit")
	fs.IntVar(&pubBurst, "max-client-pub-burst", 0, "burst for -max-client-pub-rate; 0 = twice the rate")
	fs.StringVar(&c.Profile, "profile", "", "whole-run profile written on shutdown: "+strings.Join(profileModes, "|"))
	fs.StringVar(&c.ProfileDir, "profile-dir", ".", "directory for -profile output")
	fs.IntVar(&c.GCPercent, "gc-percent", 25, "Go GC target percentage (GOGC); low keeps idle connections cheap in RSS, the push path allocates nothing; ignored when GOGC is set")
	// Security and admission control (docs/security.md).
	var (
		jwtSecret, jwtKey, jwtIss, jwtAud, origins, tlsCert, tlsKey string
		perIP, acceptRate, acceptBurst, msgRate, msgBurst           int
	)
	fs.StringVar(&jwtSecret, "jwt-secret", "", "HS256 secret (≥ 32 bytes): upgrades need a valid JWT (prefer WSPUSH_JWT_SECRET to the flag)")
	fs.StringVar(&jwtKey, "jwt-public-key", "", "PEM file with an RS256 (RSA) or ES256 (P-256) public key: upgrades need a valid JWT")
	fs.StringVar(&jwtIss, "jwt-issuer", "", "with JWT auth, the iss every token must carry (optional)")
	fs.StringVar(&jwtAud, "jwt-audience", "", "with JWT auth, an aud every token must carry (optional)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token for every admin route but /healthz; required when -admin-addr is not loopback (prefer WSPUSH_ADMIN_TOKEN)")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated browser origins allowed to connect (scheme://host[:port], or *); default: the Host header's own origin")
	fs.IntVar(&perIP, "max-conns-per-ip", gateway.DefaultMaxConnsPerIP, "connections from one IP address, over it upgrades get HTTP 429; 0 = no cap")
	fs.IntVar(&acceptRate, "accept-rate", gateway.DefaultAcceptRate, "upgrades per second, whole server; over it HTTP 503 with Retry-After; 0 = no limit")
	fs.IntVar(&acceptBurst, "accept-burst", 0, "burst for -accept-rate; 0 = one second's worth")
	fs.IntVar(&msgRate, "max-msg-rate", gateway.DefaultMaxMsgRate, "inbound messages per second per connection; over it close 1008 \"rate limit\"; every frame also counts against 8× this rate and burst, over it close 1008 \"frame rate limit\"; 0 = no limit")
	fs.IntVar(&msgBurst, "max-msg-burst", 0, "burst for -max-msg-rate; 0 = twice the rate")
	fs.StringVar(&tlsCert, "tls-cert", "", "PEM certificate (chain) for wss:// on -addr; needs -tls-key")
	fs.StringVar(&tlsKey, "tls-key", "", "PEM private key for -tls-cert")
	setCluster := clusterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			fmt.Fprintln(out, "usage: wspush [flags]; every flag can also be set as WSPUSH_<FLAG>, e.g. WSPUSH_PUSH_INTERVAL=1s")
			fs.PrintDefaults()
			return c, err
		}
		return c, fmt.Errorf("wspush: %w", err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("wspush: unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		key := "WSPUSH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(key); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("wspush: invalid value %q for %s: %w", v, key, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}

	c.AdminAddr, c.DrainRate, c.ShutdownTimeout = adminAddr, drainRate, shutdownTimeout
	c.Gateway = gateway.Config{Addr: addr, ReusePort: reusePort, TCPKeepAlive: tcpKeepAlive, MaxConns: maxConns, MaxMessageBytes: int(maxMsg),
		MaxBadMessages: maxBad, Welcome: welcome, Pollers: pollers, MaxSubs: maxSubs, ClientPublish: clientPub, Compression: compression}
	c.Bus = bus.Config{HistorySize: histSize, HistoryTTL: histTTL, MaxTopics: maxTop, MaxDataBytes: int(maxPub), MaxHistoryBytes: int64(histBytes)}
	c.Hub = hub.Config{PushInterval: orDisabled(push), PushText: pushText, PingInterval: orDisabled(ping),
		IdleTimeout: orDisabled(idle), MaxUnsent: int(maxWrite), Shards: shards}
	if perIP < 0 || acceptRate < 0 || msgRate < 0 {
		return c, fmt.Errorf("wspush: -max-conns-per-ip, -accept-rate and -max-msg-rate must not be negative")
	}
	if pubRate < 0 || pubBurst < 0 || histBytes < 1 {
		return c, fmt.Errorf("wspush: -max-client-pub-rate and -max-client-pub-burst must not be negative, -max-history-bytes must be positive")
	}
	c.Gateway.MaxClientPubRate, c.Gateway.MaxClientPubBurst = offIfZero(pubRate), pubBurst
	g := &c.Gateway
	g.MaxHeaderBytes, g.HandshakeTimeout = int(maxHeader), handshakeTimeout
	g.Auth = auth.Config{Secret: jwtSecret, PublicKeyFile: jwtKey, Issuer: jwtIss, Audience: jwtAud}
	if origins != "" {
		g.AllowedOrigins = strings.Split(origins, ",")
	}
	g.MaxConnsPerIP, g.AcceptRate, g.MaxMsgRate = offIfZero(perIP), offIfZero(acceptRate), offIfZero(msgRate)
	g.AcceptBurst, g.MaxMsgBurst = acceptBurst, msgBurst
	g.TLSCertFile, g.TLSKeyFile = tlsCert, tlsKey
	setCluster(&c)
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{"-push-interval": c.Hub.PushInterval, "-ping-interval": c.Hub.PingInterval, "-idle-timeout": c.Hub.IdleTimeout} {
		if d != hub.Disabled && d < 10*time.Millisecond {
			errs = append(errs, fmt.Errorf("%s must be 0 or at least 10ms, not %v", name, d))
		}
	}
	if c.Gateway.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("-max-conns must not be negative"))
	}
	if c.Gateway.MaxHeaderBytes < 256 || c.Gateway.HandshakeTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("-max-header-bytes must be at least 256 and -handshake-timeout at least 10ms"))
	}
	if c.Gateway.MaxMessageBytes < 1 {
		errs = append(errs, fmt.Errorf("-max-message-bytes must be positive"))
	}
	if c.Hub.MaxUnsent < 1024 {
		errs = append(errs, fmt.Errorf("-max-write-buffer must be at least 1KiB"))
	} else if c.Bus.MaxDataBytes+1024 > c.Hub.MaxUnsent/2 {
		errs = append(errs, fmt.Errorf("-max-publish-bytes (%d) plus framing must fit in half of -max-write-buffer (%d), or one message would drop its readers as slow", c.Bus.MaxDataBytes, c.Hub.MaxUnsent))
	}
	if c.Gateway.MaxSubs < 1 || c.Bus.HistorySize < 1 || c.Bus.MaxTopics < 1 {
		errs = append(errs, fmt.Errorf("-max-subs, -history-size and -max-topics must be at least 1"))
	}
	if c.Bus.HistoryTTL <= 0 || c.Bus.MaxDataBytes < 1 {
		errs = append(errs, fmt.Errorf("-history-ttl and -max-publish-bytes must be positive"))
	}
	if c.Gateway.MaxBadMessages < 1 {
		errs = append(errs, fmt.Errorf("-max-bad-messages must be at least 1"))
	}
	if c.DrainRate < 1 {
		errs = append(errs, fmt.Errorf("-drain-rate must be at least 1"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-shutdown-timeout must be positive"))
	}
	if c.Hub.Shards < 0 || c.Gateway.Pollers < 0 {
		errs = append(errs, fmt.Errorf("-shards and -pollers must not be negative"))
	}
	errs = append(errs, c.validateSecurity()...)
	errs = append(errs, c.validateCluster()...)
	if c.Profile != "" && !contains(profileModes, c.Profile) {
		errs = append(errs, fmt.Errorf("-profile must be one of %s", strings.Join(profileModes, "|")))
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return fmt.Errorf("wspush: %s", strings.Join(msgs, "; "))
	}
	return nil
}

func (c Config) validateSecurity() []error {
	var errs []error
	g := c.Gateway
	if c.AdminToken == "" && !admin.IsLoopback(orString(c.AdminAddr, admin.DefaultAddr)) {
		errs = append(errs, fmt.Errorf("-admin-addr %s is not loopback: set -admin-token (or WSPUSH_ADMIN_TOKEN)", c.AdminAddr))
	}
	if g.Auth.Secret != "" && g.Auth.PublicKeyFile != "" {
		errs = append(errs, fmt.Errorf("set -jwt-secret or -jwt-public-key, not both"))
	}
	if g.Auth.Secret != "" && len(g.Auth.Secret) < auth.MinSecretBytes {
		errs = append(errs, fmt.Errorf("-jwt-secret must be at least %d bytes", auth.MinSecretBytes))
	}
	if !g.Auth.Enabled() && (g.Auth.Issuer != "" || g.Auth.Audience != "") {
		errs = append(errs, fmt.Errorf("-jwt-issuer and -jwt-audience need -jwt-secret or -jwt-public-key"))
	}
	if (g.TLSCertFile == "") != (g.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("-tls-cert and -tls-key go together"))
	}
	if g.AcceptBurst < 0 || g.MaxMsgBurst < 0 {
		errs = append(errs, fmt.Errorf("-accept-burst and -max-msg-burst must not be negative"))
	}
	return errs
}

// offIfZero maps a flag's 0 ("no limit") to a Config's negative value.
func offIfZero(v int) int {
	if v == 0 {
		return -1
	}
	return v
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func orDisabled(d time.Duration) time.Duration {
	if d == 0 {
		return hub.Disabled
	}
	return d
}

// size is a byte count flag that takes plain bytes or a KiB/MiB/GiB suffix.
type size int

func (s *size) String() string { return strconv.Itoa(int(*s)) }

func (s *size) Set(v string) error {
	mult := 1
	num := v
	for suffix, m := range map[string]int{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(v, suffix) {
			num, mult = strings.TrimSuffix(v, suffix), m
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 0 || n > (1<<31)/mult {
		return fmt.Errorf("not a size: %q (use bytes, or a number with KiB, MiB or GiB)", v)
	}
	*s = size(n * mult)
	return nil
}
