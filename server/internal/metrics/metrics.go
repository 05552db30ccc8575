// Package metrics holds a wspush server's counters, gauges and histograms,
// and serves them to Prometheus (through github.com/prometheus/client_golang,
// every family with HELP and TYPE) and as the JSON of /v1/stats.
//
// Concurrency: every metric is safe for concurrent use and takes no lock on
// the hot path: a Counter is one atomic integer, the tick-lag Histogram is
// client_golang's lock-free one; gauges are functions read at scrape time.
// Each Metrics has its own registry, so several servers can live in one
// process (as they do in tests). Hot paths should batch: count locally per
// slot or per message and Add once.
package metrics

import (
	"net/http"
	"runtime"
	"time"
)

// Reasons a connection was closed, the label values of
// wspush_connections_closed_total.
const (
	ClosedByClient   = "client"        // the client closed or the socket failed
	ClosedIdle       = "idle"          // nothing arrived for the idle timeout
	ClosedSlow       = "slow_consumer" // unsent bytes passed the cap
	ClosedBadInput   = "bad_input"     // too many bad messages in a row
	ClosedTooBig     = "too_big"       // a message over the size limit
	ClosedProtocol   = "protocol"      // an RFC 6455 violation
	ClosedShutdown   = "shutdown"      // drained on shutdown
	ClosedWriteError = "write_error"   // a write to the socket failed
	ClosedExpired    = "token_expired" // the client's JWT expired
	ClosedRateLimit  = "rate_limit"    // the client sent messages too fast
	ClosedTimeout    = "timeout"       // an nbio read or write deadline passed
	ClosedAdmin      = "admin"         // disconnected through the server API
)

var closeReasons = []string{ClosedByClient, ClosedIdle, ClosedSlow, ClosedBadInput, ClosedTooBig, ClosedProtocol, ClosedShutdown, ClosedWriteError,
	ClosedExpired, ClosedRateLimit, ClosedTimeout, ClosedAdmin}

// Reasons an upgrade was refused.
const (
	UpgradeMaxConns     = "max_conns"
	UpgradeBadHandshake = "bad_handshake"
	UpgradeShuttingDown = "shutting_down"
	UpgradeUnauthorized = "unauthorized" // no valid JWT (HTTP 401)
	UpgradeBadOrigin    = "bad_origin"   // Origin not allowed (HTTP 403)
	UpgradeAcceptRate   = "accept_rate"  // over -accept-rate (HTTP 503)
	UpgradePerIP        = "per_ip"       // over -max-conns-per-ip (HTTP 503)
	// UpgradeTooLarge: a request header over -max-header-bytes (HTTP 431)
	// or a request with a body (413) before the upgrade.
	UpgradeTooLarge = "too_large"
	// UpgradeTimeout: no complete upgrade within -handshake-timeout.
	UpgradeTimeout = "handshake_timeout"
)

var upgradeReasons = []string{UpgradeMaxConns, UpgradeBadHandshake, UpgradeShuttingDown,
	UpgradeUnauthorized, UpgradeBadOrigin, UpgradeAcceptRate, UpgradePerIP, UpgradeTooLarge, UpgradeTimeout}

// Metrics is one server's metric set.
type Metrics struct {
	reg   *Registry
	start time.Time

	Accepted  *Counter
	closed    map[string]*Counter // read-only after New
	upgrade   map[string]*Counter // read-only after New
	FramesIn  *Counter
	BytesIn   *Counter
	FramesOut *Counter
	BytesOut  *Counter
	Pushes    *Counter
	Delivered *Counter // topic messages and broadcasts written to clients
	BadInput  *Counter // error frames sent for bad client messages
	// TickLag is how late each wheel slot finished against its due time.
	TickLag *Histogram
	// SlotsBehind counts wheel slots visited late (more than one per wake-up).
	SlotsBehind *Counter

	users func() int64 // distinct authenticated users; nil without auth

	historyBytes func() int64 // bytes held by topic history; nil until SetHistory
}

// SetUsers reports distinct authenticated users (the JWT sub) through f, as
// the gauge wspush_users and "users" in /v1/stats. Call it before serving.
func (m *Metrics) SetUsers(f func() int64) {
	m.users = f
	m.reg.NewGauge("wspush_users", "Distinct authenticated users (JWT sub) with at least one connection.",
		func() float64 { return float64(f()) })
}

// SetHistory reports the bytes held by topic history through bytes, as the
// gauge wspush_history_bytes and "history_bytes" in /v1/stats, and the
// history entries evicted early for the global cap through evictions, as
// wspush_history_evictions_total. Call it before serving.
func (m *Metrics) SetHistory(bytes func() int64, evictions func() uint64) {
	m.historyBytes = bytes
	m.reg.NewGauge("wspush_history_bytes", "Bytes held by the history of all topics (capped by -max-history-bytes).",
		func() float64 { return float64(bytes()) })
	m.reg.NewCounterFunc("wspush_history_evictions_total",
		"History entries evicted before their TTL because the history of all topics reached -max-history-bytes.",
		func() float64 { return float64(evictions()) })
}

// New returns a metric set; conns reports the current connection count.
func New(conns func() int64) *Metrics {
	r := newRegistry()
	m := &Metrics{
		reg:       r,
		start:     time.Now(),
		Accepted:  r.NewCounter("wspush_connections_accepted_total", "WebSocket connections accepted (upgrades completed)."),
		closed:    map[string]*Counter{},
		upgrade:   map[string]*Counter{},
		FramesIn:  r.NewCounter("wspush_frames_in_total", "WebSocket messages received from clients."),
		BytesIn:   r.NewCounter("wspush_bytes_in_total", "Payload bytes of the WebSocket messages received from clients."),
		FramesOut: r.NewCounter("wspush_frames_out_total", "WebSocket frames written to clients."),
		BytesOut:  r.NewCounter("wspush_bytes_out_total", "Bytes of the WebSocket frames written to clients."),
		Pushes:    r.NewCounter("wspush_pushes_total", "Tick pushes written to clients."),
		Delivered: r.NewCounter("wspush_messages_delivered_total", "Topic messages and broadcasts written to clients."),
		BadInput:  r.NewCounter("wspush_bad_messages_total", "Client messages answered with an error frame (bad JSON, unknown type, rate limit...)."),
		TickLag: r.NewHistogram("wspush_tick_lag_seconds",
			"How late each timing-wheel slot finished against its due time, in seconds.", lagBuckets),
		SlotsBehind: r.NewCounter("wspush_wheel_slots_late_total", "Timing-wheel slots visited late (more than one slot per wake-up)."),
	}
	r.NewGauge("wspush_connections", "Open WebSocket connections.", func() float64 { return float64(conns()) })
	for _, reason := range closeReasons {
		m.closed[reason] = r.NewCounter("wspush_connections_closed_total",
			"WebSocket connections closed, by reason.", "reason", reason)
	}
	for _, reason := range upgradeReasons {
		m.upgrade[reason] = r.NewCounter("wspush_upgrade_failures_total",
			"Connection attempts refused before or at the WebSocket upgrade, by reason.", "reason", reason)
	}
	return m
}

var lagBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Registry returns the registry, for packages that add metrics of their own.
func (m *Metrics) Registry() *Registry { return m.reg }

// Closed counts a closed connection; reason is one of the Closed* values.
func (m *Metrics) Closed(reason string) {
	if c, ok := m.closed[reason]; ok {
		c.Inc()
	}
}

// ClosedCount returns the connections closed for reason.
func (m *Metrics) ClosedCount(reason string) uint64 {
	if c, ok := m.closed[reason]; ok {
		return c.Get()
	}
	return 0
}

// UpgradeFailed counts a refused upgrade; reason is one of the Upgrade* values.
func (m *Metrics) UpgradeFailed(reason string) {
	if c, ok := m.upgrade[reason]; ok {
		c.Inc()
	}
}

// Handler serves every metric, and the process's and Go runtime's, to
// Prometheus (see Registry.Handler).
func (m *Metrics) Handler() http.Handler { return m.reg.Handler() }

// Stats is the JSON document of /v1/stats.
type Stats struct {
	UptimeSeconds     float64           `json:"uptime_seconds"`
	Connections       int64             `json:"connections"`
	Accepted          uint64            `json:"accepted"`
	Closed            map[string]uint64 `json:"closed"`
	UpgradeFailures   map[string]uint64 `json:"upgrade_failures"`
	SlowConsumerDrops uint64            `json:"slow_consumer_drops"`
	Pushes            uint64            `json:"pushes"`
	Delivered         uint64            `json:"messages_delivered"`
	FramesIn          uint64            `json:"frames_in"`
	BytesIn           uint64            `json:"bytes_in"`
	FramesOut         uint64            `json:"frames_out"`
	BytesOut          uint64            `json:"bytes_out"`
	BadMessages       uint64            `json:"bad_messages"`
	WheelSlotsLate    uint64            `json:"wheel_slots_late"`
	Users             *int64            `json:"users,omitempty"` // distinct JWT subs connected, with auth on
	HistoryBytes      int64             `json:"history_bytes"`   // held by topic history, under -max-history-bytes
	Goroutines        int               `json:"goroutines"`
	HeapBytes         uint64            `json:"heap_bytes"`
}

// Snapshot returns the current figures; conns is the connection count.
func (m *Metrics) Snapshot(conns int64) Stats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := Stats{
		UptimeSeconds:     time.Since(m.start).Seconds(),
		Connections:       conns,
		Accepted:          m.Accepted.Get(),
		Closed:            map[string]uint64{},
		UpgradeFailures:   map[string]uint64{},
		SlowConsumerDrops: m.closed[ClosedSlow].Get(),
		Pushes:            m.Pushes.Get(),
		Delivered:         m.Delivered.Get(),
		FramesIn:          m.FramesIn.Get(),
		BytesIn:           m.BytesIn.Get(),
		FramesOut:         m.FramesOut.Get(),
		BytesOut:          m.BytesOut.Get(),
		BadMessages:       m.BadInput.Get(),
		WheelSlotsLate:    m.SlotsBehind.Get(),
		Goroutines:        runtime.NumGoroutine(),
		HeapBytes:         ms.HeapAlloc,
	}
	if m.users != nil {
		u := m.users()
		st.Users = &u
	}
	if m.historyBytes != nil {
		st.HistoryBytes = m.historyBytes()
	}
	for r, c := range m.closed {
		st.Closed[r] = c.Get()
	}
	for r, c := range m.upgrade {
		st.UpgradeFailures[r] = c.Get()
	}
	return st
}
