package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"wspush/server/internal/admin"
	"wspush/server/internal/auth"
	"wspush/server/internal/bus"
	"wspush/server/internal/gateway"
	"wspush/server/internal/hook"
	"wspush/server/internal/hub"
	"wspush/server/internal/natsbus"
	"wspush/server/internal/presence"
	"wspush/server/internal/snapshot"
	"wspush/server/internal/webhook"
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
	BurstGCPercent  int
	AdminToken      string
	State           snapshot.Config
	Webhook         webhook.Config
	Presence        presence.Config
}

var profileModes = []string{"cpu", "mem", "alloc", "block", "mutex", "trace", "goroutine"}

// The one scheme for "default" and "off". In every package's Config, 0
// means the package's default and a negative number or duration turns the
// feature off (no limit); hub.Disabled is that negative duration. Flags keep
// their documented syntax: where a flag's help says "0 = off", "0 disables"
// or "0 = no limit", parseConfig maps the 0 to off (offFlags); where it says
// "0 = …" anything else, the 0 reaches the Config as its default.

// minInterval is the shortest push, ping or idle period and handshake
// timeout a flag may set (the hub's own floor, which hub.New enforces for
// any caller); the flags' 10 ms rule is checkInterval.
const minInterval = hub.MinInterval

// parseConfig reads flags from args, then fills any flag not given there
// from the environment as WSPUSH_<FLAG> (dashes as underscores). Flags are
// bound straight into the Config they set. -h and -version write to out and
// return flag.ErrHelp or errVersion; -healthcheck returns errHealthcheck
// with AdminAddr set, before any validation.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := Config{DrainRate: 10_000, ShutdownTimeout: 30 * time.Second, GCPercent: 25}
	g, h, b := &c.Gateway, &c.Hub, &c.Bus
	*g = gateway.Config{Addr: gateway.DefaultAddr, MaxHeaderBytes: gateway.DefaultMaxHeaderBytes, HandshakeTimeout: gateway.DefaultHandshakeTimeout,
		MaxMessageBytes: gateway.DefaultMaxMessageBytes, MaxBadMessages: gateway.DefaultMaxBadMessages, Welcome: gateway.DefaultWelcome,
		MaxSubs: gateway.DefaultMaxSubs, MaxClientPubRate: gateway.DefaultMaxPubRate, MaxConnsPerIP: gateway.DefaultMaxConnsPerIP,
		AcceptRate: gateway.DefaultAcceptRate, MaxMsgRate: gateway.DefaultMaxMsgRate}
	*h = hub.Config{PushInterval: hub.DefaultPushInterval, PingInterval: hub.DefaultPingInterval, IdleTimeout: hub.DefaultIdleTimeout,
		MaxUnsent: hub.DefaultMaxUnsent}
	*b = bus.Config{HistorySize: bus.DefaultHistorySize, HistoryTTL: bus.DefaultHistoryTTL, MaxTopics: bus.DefaultMaxTopics,
		MaxDataBytes: bus.DefaultMaxDataBytes, MaxHistoryBytes: bus.DefaultMaxHistoryBytes}
	fs := flag.NewFlagSet("wspush", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a bad flag is one line; -h prints the defaults
	fs.StringVar(&g.Addr, "addr", g.Addr, "WebSocket listen address (the demo page is at /, WebSocket at /ws)")
	c.AdminAddr = admin.DefaultAddr
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "admin listen address: /healthz, /metrics, /v1/stats, /debug/pprof/")
	fs.BoolVar(&g.ReusePort, "reuseport", false, "set SO_REUSEPORT so several processes can share -addr")
	fs.DurationVar(&g.TCPKeepAlive, "tcp-keepalive", 0, "kernel TCP keepalive period of client sockets; 0 = off (pings and -idle-timeout detect dead peers)")
	fs.DurationVar(&h.PushInterval, "push-interval", h.PushInterval, "period of each client's tick push; 0 disables pushes")
	fs.StringVar(&h.PushText, "push-text", "", "text carried by every tick (none by default)")
	fs.StringVar(&g.Welcome, "welcome", g.Welcome, "text of the welcome message")
	fs.DurationVar(&h.PingInterval, "ping-interval", h.PingInterval, "WebSocket ping period per client; 0 disables pings")
	fs.DurationVar(&h.IdleTimeout, "idle-timeout", h.IdleTimeout, "close a client from which nothing arrived for this long; 0 disables")
	fs.IntVar(&g.MaxConns, "max-conns", 0, fmt.Sprintf("connection cap, over it clients get HTTP 503; 0 = RLIMIT_NOFILE minus a reserve for admin, NATS and files (max(64, limit/64)): %d here", gateway.DefaultMaxConns()))
	fs.Var((*size)(&g.MaxHeaderBytes), "max-header-bytes", "largest HTTP request header before the upgrade (bytes, or with KiB/MiB/GiB); over it HTTP 431 and close")
	fs.DurationVar(&g.HandshakeTimeout, "handshake-timeout", g.HandshakeTimeout, "longest time from accept to a complete WebSocket upgrade; slower connections are closed")
	fs.Var((*size)(&g.MaxMessageBytes), "max-message-bytes", "largest inbound message (bytes, or with KiB/MiB/GiB); larger ones close with 1009")
	fs.Var((*size)(&h.MaxUnsent), "max-write-buffer", "cap on a client's unsent bytes (bytes, or with KiB/MiB/GiB); over it the client is dropped as slow (4008)")
	fs.IntVar(&g.MaxBadMessages, "max-bad-messages", g.MaxBadMessages, "bad messages in a row before a client is closed with 1008")
	fs.IntVar(&c.DrainRate, "drain-rate", c.DrainRate, "closes per second when draining on shutdown")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "longest wait for clients to leave on shutdown")
	fs.IntVar(&h.Shards, "shards", 0, "timing-wheel shards; 0 = one per core")
	fs.IntVar(&g.Pollers, "pollers", 0, "nbio poller goroutines; 0 = half the cores, at least 1")
	fs.IntVar(&g.MaxSubs, "max-subs", g.MaxSubs, "subscriptions per connection")
	fs.BoolVar(&g.ClientPublish, "client-publish", false, "let clients publish with pub frames (publishers use the admin API otherwise)")
	fs.BoolVar(&g.Compression, "compression", false, "offer permessage-deflate; published messages go compressed (once for all) to clients that accept it")
	fs.IntVar(&b.HistorySize, "history-size", b.HistorySize, "messages each topic keeps for resume")
	fs.DurationVar(&b.HistoryTTL, "history-ttl", b.HistoryTTL, "how long a message stays in a topic's history")
	fs.IntVar(&b.MaxTopics, "max-topics", b.MaxTopics, "cap on the number of topics")
	fs.Var((*size)(&b.MaxDataBytes), "max-publish-bytes", "largest published value (bytes, or with KiB/MiB/GiB)")
	fs.Var((*size64)(&b.MaxHistoryBytes), "max-history-bytes", "cap on the history of all topics together (bytes, or with KiB/MiB/GiB); over it the oldest messages leave first and resumes into them get history_gone")
	fs.IntVar(&g.MaxClientPubRate, "max-client-pub-rate", g.MaxClientPubRate, "pub messages per second per connection (with -client-publish); over it the pub gets error \"rate_limited\"; 0 = no limit")
	fs.IntVar(&g.MaxClientPubBurst, "max-client-pub-burst", 0, "burst for -max-client-pub-rate; 0 = twice the rate")
	fs.StringVar(&c.Profile, "profile", "", "whole-run profile written on shutdown: "+strings.Join(profileModes, "|"))
	fs.StringVar(&c.ProfileDir, "profile-dir", ".", "directory for -profile output")
	fs.StringVar(&c.State.Dir, "state-dir", "", "directory where topic state (epochs, seqs, history, newest values) is saved on graceful shutdown and loaded at start, so resumes continue across a restart; empty = off (not with -nats)")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "Go GC target percentage (GOGC); low keeps idle connections cheap in RSS, the push path allocates nothing; ignored when GOGC is set")
	fs.IntVar(&c.BurstGCPercent, "burst-gc-percent", 0, "Go GC target percentage while a burst of allocation (a connect ramp) is under way, until the trim after it (at most 30s); 0 = 50, negative = off (-gc-percent throughout); ignored when GOGC is set")
	// Security and admission control (docs/security.md).
	fs.StringVar(&g.Auth.Secret, "jwt-secret", "", "HS256 secret (≥ 32 bytes): upgrades need a valid JWT (prefer WSPUSH_JWT_SECRET to the flag)")
	fs.StringVar(&g.Auth.PublicKeyFile, "jwt-public-key", "", "PEM file with an RS256 (RSA) or ES256 (P-256) public key: upgrades need a valid JWT")
	fs.StringVar(&g.Auth.Issuer, "jwt-issuer", "", "with JWT auth, the iss every token must carry (optional)")
	fs.StringVar(&g.Auth.Audience, "jwt-audience", "", "with JWT auth, an aud every token must carry (optional)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token for every admin route but /healthz; required when -admin-addr is not loopback (prefer WSPUSH_ADMIN_TOKEN)")
	var origins string // a string flag, split once parsed (its help shows "string")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated browser origins allowed to connect (scheme://host[:port], or *); default: the Host header's own origin")
	fs.IntVar(&g.MaxConnsPerIP, "max-conns-per-ip", g.MaxConnsPerIP, "connections from one IP address, over it upgrades get HTTP 429; 0 = no cap")
	fs.IntVar(&g.AcceptRate, "accept-rate", g.AcceptRate, "upgrades per second, whole server; over it HTTP 503 with Retry-After; 0 = no limit")
	fs.IntVar(&g.AcceptBurst, "accept-burst", 0, "burst for -accept-rate; 0 = one second's worth")
	fs.IntVar(&g.MaxMsgRate, "max-msg-rate", g.MaxMsgRate, "inbound messages per second per connection; over it close 1008 \"rate limit\"; every frame also counts against 8× this rate and burst, over it close 1008 \"frame rate limit\"; 0 = no limit")
	fs.IntVar(&g.MaxMsgBurst, "max-msg-burst", 0, "burst for -max-msg-rate; 0 = twice the rate")
	fs.StringVar(&g.TLSCertFile, "tls-cert", "", "PEM certificate (chain) for wss:// on -addr; needs -tls-key")
	fs.StringVar(&g.TLSKeyFile, "tls-key", "", "PEM private key for -tls-cert")
	clusterFlags(fs, &c.NATS)
	hookFlags(fs, &g.Hooks) // backend hooks (docs/backend.md)
	presenceFlags(fs, &c.Presence)
	// Webhooks (docs/backend.md).
	wh := &c.Webhook
	fs.StringVar(&wh.URL, "webhook-url", "", "POST batched, signed event notifications (topic occupied/vacated, connection closed) to this http(s) URL; empty = off")
	fs.StringVar(&wh.Secret, "webhook-secret", "", fmt.Sprintf("HMAC-SHA256 key (≥ %d bytes) of the webhook signature header; required with -webhook-url (prefer WSPUSH_WEBHOOK_SECRET)", webhook.MinSecretBytes))
	var whEvents string
	fs.StringVar(&whEvents, "webhook-events", "all", "comma-separated webhook event kinds to send: topic_occupied, topic_vacated, connection_closed, presence_join, presence_leave, or all")
	fs.IntVar(&wh.Batch, "webhook-batch", webhook.DefaultBatch, "most events in one webhook POST (sent at the latest 1 s after its first event)")
	fs.IntVar(&wh.Buffer, "webhook-buffer", webhook.DefaultBuffer, "most webhook events waiting for delivery; over it new events are dropped and counted")
	version := fs.Bool("version", false, "print the version (the build's module version or VCS revision, else devel) and exit; command line only")
	healthcheck := fs.Bool("healthcheck", false, "GET /healthz on -admin-addr (an unspecified host as loopback), exit 0 if it answers 200, else 1; for a container's HEALTHCHECK; command line only")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			fmt.Fprintln(out, "usage: wspush [flags]; every flag can also be set as WSPUSH_<FLAG>, e.g. WSPUSH_PUSH_INTERVAL=1s")
			fs.PrintDefaults()
			return c, err
		}
		return c, fmt.Errorf("wspush: %w", err)
	}
	if *version {
		fmt.Fprintln(out, "wspush", buildVersion())
		return c, errVersion
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("wspush: unexpected argument %q", fs.Arg(0))
	}
	if err := setFromEnv(fs, getenv); err != nil {
		return c, err
	}
	if *healthcheck { // needs only -admin-addr, from the flags or the environment
		return c, errHealthcheck
	}
	if origins != "" {
		g.AllowedOrigins = strings.Split(origins, ",")
	}
	var err error
	if wh.Events, err = webhook.ParseKinds(whEvents); err != nil {
		return c, fmt.Errorf("wspush: -webhook-events: %w", err)
	}
	// Validated as the flags were given (0 = off where the help says so),
	// then mapped to the Configs' scheme.
	if err := c.validate(); err != nil {
		return c, err
	}
	c.offFlags()
	c.NATS.HistorySize, c.NATS.HistoryTTL = c.Bus.HistorySize, c.Bus.HistoryTTL
	return c, nil
}

// setFromEnv sets every flag not given on the command line from
// WSPUSH_<FLAG>, in the flag set's (sorted) order; -version and
// -healthcheck are command line only (from the environment they would make
// a service exit at start).
func setFromEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil || f.Name == "version" || f.Name == "healthcheck" {
			return
		}
		key := "WSPUSH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(key); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("wspush: invalid value %q for %s: %w", v, key, err)
			}
		}
	})
	return envErr
}

// offFlags maps the flags whose 0 means off to the Configs' negative off.
func (c *Config) offFlags() {
	for _, d := range []*time.Duration{&c.Hub.PushInterval, &c.Hub.PingInterval, &c.Hub.IdleTimeout} {
		*d = offIfZero(*d, hub.Disabled)
	}
	g := &c.Gateway
	for _, v := range []*int{&g.MaxConnsPerIP, &g.AcceptRate, &g.MaxMsgRate, &g.MaxClientPubRate} {
		*v = offIfZero(*v, -1)
	}
}

// offIfZero maps a flag's 0 ("off", "no limit") to a Config's off.
func offIfZero[T int | time.Duration](v, off T) T {
	if v == 0 {
		return off
	}
	return v
}

// checkInterval is the 10 ms rule: d is 0 (where zeroOK: off) or at
// least minInterval.
func checkInterval(name string, d time.Duration, zeroOK bool) error {
	if (zeroOK && d == 0) || d >= minInterval {
		return nil
	}
	if zeroOK {
		return fmt.Errorf("%s must be 0 or at least %v, not %v", name, minInterval, d)
	}
	return fmt.Errorf("%s must be at least %v, not %v", name, minInterval, d)
}

// validate checks the flags as given, in a fixed order, and reports every
// problem on one line.
func (c Config) validate() error {
	errs := []error{
		checkInterval("-push-interval", c.Hub.PushInterval, true),
		checkInterval("-ping-interval", c.Hub.PingInterval, true),
		checkInterval("-idle-timeout", c.Hub.IdleTimeout, true),
		checkInterval("-handshake-timeout", c.Gateway.HandshakeTimeout, false),
	}
	errs = append(errs, c.validateSizes()...)
	errs = append(errs, c.validateServer()...)
	errs = append(errs, c.validateSecurity()...)
	errs = append(errs, c.validateLimits()...)
	errs = append(errs, c.validateCluster()...)
	errs = append(errs, c.Presence.Validate())
	if c.Webhook.URL != "" {
		errs = append(errs, c.Webhook.Validate())
	} else if c.Webhook.Secret != "" {
		errs = append(errs, errors.New("-webhook-secret needs -webhook-url"))
	}
	if c.Profile != "" && !slices.Contains(profileModes, c.Profile) {
		errs = append(errs, fmt.Errorf("-profile must be one of %s", strings.Join(profileModes, "|")))
	}
	if err := errors.Join(errs...); err != nil {
		return oneLine{err}
	}
	return nil
}

// validateSizes checks the byte and count caps.
func (c Config) validateSizes() []error {
	var errs []error
	if c.Gateway.MaxConns < 0 {
		errs = append(errs, errors.New("-max-conns must not be negative"))
	}
	if c.Gateway.MaxHeaderBytes < 256 {
		errs = append(errs, errors.New("-max-header-bytes must be at least 256"))
	}
	if c.Gateway.MaxMessageBytes < 1 {
		errs = append(errs, errors.New("-max-message-bytes must be positive"))
	}
	if c.Hub.MaxUnsent < 1024 {
		errs = append(errs, errors.New("-max-write-buffer must be at least 1KiB"))
	} else if c.Bus.MaxDataBytes+1024 > c.Hub.MaxUnsent/2 {
		errs = append(errs, fmt.Errorf("-max-publish-bytes (%d) plus framing must fit in half of -max-write-buffer (%d), or one message would drop its readers as slow", c.Bus.MaxDataBytes, c.Hub.MaxUnsent))
	}
	if c.Gateway.MaxSubs < 1 || c.Bus.HistorySize < 1 || c.Bus.MaxTopics < 1 {
		errs = append(errs, errors.New("-max-subs, -history-size and -max-topics must be at least 1"))
	}
	if c.Bus.HistoryTTL <= 0 || c.Bus.MaxDataBytes < 1 || c.Bus.MaxHistoryBytes < 1 {
		errs = append(errs, errors.New("-history-ttl, -max-publish-bytes and -max-history-bytes must be positive"))
	}
	return errs
}

// validateServer checks the process-wide settings.
func (c Config) validateServer() []error {
	var errs []error
	if c.Gateway.MaxBadMessages < 1 {
		errs = append(errs, errors.New("-max-bad-messages must be at least 1"))
	}
	if c.DrainRate < 1 {
		errs = append(errs, errors.New("-drain-rate must be at least 1"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("-shutdown-timeout must be positive"))
	}
	if c.Hub.Shards < 0 || c.Gateway.Pollers < 0 {
		errs = append(errs, errors.New("-shards and -pollers must not be negative"))
	}
	return errs
}

// oneLine is the joined validation errors as one "wspush: a; b" line; the
// errors stay reachable with errors.Is and errors.As.
type oneLine struct{ err error }

func (e oneLine) Error() string {
	return "wspush: " + strings.ReplaceAll(e.err.Error(), "\n", "; ")
}

func (e oneLine) Unwrap() error { return e.err }

// validateSecurity checks the admin, JWT and TLS settings.
func (c Config) validateSecurity() []error {
	var errs []error
	g := c.Gateway
	if c.AdminToken == "" && !admin.IsLoopback(cmp.Or(c.AdminAddr, admin.DefaultAddr)) {
		errs = append(errs, fmt.Errorf("-admin-addr %s is not loopback: set -admin-token (or WSPUSH_ADMIN_TOKEN)", c.AdminAddr))
	}
	if g.Auth.Secret != "" && g.Auth.PublicKeyFile != "" {
		errs = append(errs, errors.New("set -jwt-secret or -jwt-public-key, not both"))
	}
	if g.Auth.Secret != "" && len(g.Auth.Secret) < auth.MinSecretBytes {
		errs = append(errs, fmt.Errorf("-jwt-secret must be at least %d bytes", auth.MinSecretBytes))
	}
	if !g.Auth.Enabled() && (g.Auth.Issuer != "" || g.Auth.Audience != "") {
		errs = append(errs, errors.New("-jwt-issuer and -jwt-audience need -jwt-secret or -jwt-public-key"))
	}
	if (g.TLSCertFile == "") != (g.TLSKeyFile == "") {
		errs = append(errs, errors.New("-tls-cert and -tls-key go together"))
	}
	return errs
}

// validateLimits checks the admission rates and caps.
func (c Config) validateLimits() []error {
	var errs []error
	g := c.Gateway
	if g.MaxConnsPerIP < 0 || g.AcceptRate < 0 || g.MaxMsgRate < 0 {
		errs = append(errs, errors.New("-max-conns-per-ip, -accept-rate and -max-msg-rate must not be negative"))
	}
	if g.AcceptBurst < 0 || g.MaxMsgBurst < 0 {
		errs = append(errs, errors.New("-accept-burst and -max-msg-burst must not be negative"))
	}
	if g.MaxClientPubRate < 0 || g.MaxClientPubBurst < 0 {
		errs = append(errs, errors.New("-max-client-pub-rate and -max-client-pub-burst must not be negative"))
	}
	return errs
}

// size is a byte count flag bound to an int; it takes plain bytes or a
// KiB/MiB/GiB suffix.
type size int

func (s *size) String() string {
	if s == nil {
		return "0"
	}
	return strconv.Itoa(int(*s))
}

func (s *size) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = size(n)
	return nil
}

// size64 is size bound to an int64.
type size64 int64

func (s *size64) String() string {
	if s == nil {
		return "0"
	}
	return strconv.FormatInt(int64(*s), 10)
}

func (s *size64) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = size64(n)
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   int
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}}

// parseSize reads bytes, or a number with KiB, MiB or GiB, up to 2 GiB.
func parseSize(v string) (int, error) {
	mult := 1
	num := v
	for _, u := range sizeUnits {
		if strings.HasSuffix(v, u.suffix) {
			num, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 0 || n > (1<<31)/mult {
		return 0, fmt.Errorf("not a size: %q (use bytes, or a number with KiB, MiB or GiB)", v)
	}
	return n * mult, nil
}

// hookFlags binds the backend hooks' flags (docs/backend.md).
func hookFlags(fs *flag.FlagSet, h *gateway.Hooks) {
	fs.StringVar(&h.Connect, "proxy-connect", "", "connect hook: POST the allow-listed headers and query of each WebSocket upgrade or SSE stream that has no JWT to this http(s) URL; the answer accepts (user, topic patterns, expiry) or refuses (WebSocket: close 4000+status; SSE: that HTTP status); empty = off")
	fs.StringVar(&h.Subscribe, "proxy-subscribe", "", "subscribe hook: POST each sub to this http(s) URL; the answer allows (optional data sent in \"subscribed\") or denies (\"forbidden\"); empty = off")
	fs.StringVar(&h.RPC, "proxy-rpc", "", "rpc hook: POST each client rpc message to this http(s) URL and answer with its result (rpc_result) or error; empty = off (rpc gets \"not_available\")")
	fs.StringVar(&h.Publish, "proxy-publish", "", "publish hook: POST each client pub to this http(s) URL, which may refuse it or replace its data, before it is published; empty = off")
	h.Timeout = hook.DefaultTimeout
	fs.DurationVar(&h.Timeout, "proxy-timeout", h.Timeout, "longest wait for a hook's answer, queueing included; over it the client gets \"timeout\" (connect: close 4504); with -proxy-connect at most -handshake-timeout")
	fs.IntVar(&h.Concurrency, "proxy-concurrency", hook.DefaultConcurrency, "calls in flight per hook (worker goroutines and kept-alive connections to the backend)")
	fs.IntVar(&h.Queue, "proxy-queue", hook.DefaultQueue, "calls waiting per hook; over it the client gets \"overloaded\" at once")
	fs.IntVar(&h.Total, "proxy-total", hook.DefaultTotal, "calls in flight over all hooks together")
	fs.IntVar(&h.BreakerFailures, "proxy-breaker-failures", hook.DefaultBreakerFailures, "failed calls in a row (timeouts, unreachable, bad answers) that open a hook's circuit breaker; 0 = default")
	fs.DurationVar(&h.BreakerOpen, "proxy-breaker-open", hook.DefaultBreakerCooldown, "how long an open breaker fails a hook's calls at once (\"unavailable\") before one probe call goes through; 0 = default")
	h.ConnectHeaders, h.ConnectQuery = gateway.DefaultConnectHeaders, gateway.DefaultConnectQuery
	fs.Var((*nameList)(&h.ConnectHeaders), "proxy-connect-headers", "comma-separated request headers passed to the connect hook (Cookie passes the cookies), or *")
	fs.Var((*nameList)(&h.ConnectQuery), "proxy-connect-query", "comma-separated query parameters passed to the connect hook, or *")
}

// nameList is a comma-separated list flag.
type nameList []string

func (l *nameList) String() string { return strings.Join(*l, ",") }

func (l *nameList) Set(v string) error {
	*l = nil
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			*l = append(*l, n)
		}
	}
	return nil
}
