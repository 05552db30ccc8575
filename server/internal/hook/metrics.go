package hook

import (
	"sync/atomic"
	"time"

	"wspush/server/internal/metrics"
)

// Results of a call, the values of wspush_hook_calls_total's result label.
const (
	resultOK          = "ok"           // HTTP 200 with a JSON body
	resultTimeout     = "timeout"      // no answer within the timeout
	resultUnavailable = "unavailable"  // connection refused, reset, DNS, ...
	resultBadResponse = "bad_response" // not 200, not JSON, or too long
	resultBreakerOpen = "breaker_open" // refused without a call
	resultOverloaded  = "overloaded"   // the queue was full
)

var results = []string{resultOK, resultTimeout, resultUnavailable, resultBadResponse, resultBreakerOpen, resultOverloaded}

// callerMetrics are one hook's figures; the counters are no-ops until
// register gives them a registry.
type callerMetrics struct {
	calls    map[string]*metrics.Counter // read-only after register
	latency  *metrics.Histogram
	inFlight atomic.Int64
}

// latencyBuckets span a fast local backend to the default timeout.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func (m *callerMetrics) register(reg *metrics.Registry, name string, c *Caller) {
	if reg == nil {
		return
	}
	m.calls = make(map[string]*metrics.Counter, len(results))
	for _, r := range results {
		m.calls[r] = reg.NewCounter("wspush_hook_calls_total", "Backend hook calls by hook and result (ok, timeout, unavailable, bad_response, breaker_open, overloaded).",
			"hook", name, "result", r)
	}
	m.latency = reg.NewHistogram("wspush_hook_duration_seconds", "Time from sending a backend hook request to its answer, in seconds.", latencyBuckets, "hook", name)
	reg.NewGauge("wspush_hook_in_flight", "Backend hook calls waiting for their answer.", func() float64 { return float64(m.inFlight.Load()) }, "hook", name)
	reg.NewGauge("wspush_hook_queue_length", "Backend hook calls queued for a worker.", func() float64 { return float64(len(c.queue)) }, "hook", name)
	reg.NewGauge("wspush_hook_breaker_state", "Backend hook circuit breaker: 0 closed, 1 half-open (probing), 2 open.", func() float64 { return float64(c.br.current()) }, "hook", name)
}

func (m *callerMetrics) count(result string) {
	if c := m.calls[result]; c != nil {
		c.Inc()
	}
}

func (m *callerMetrics) observe(start time.Time) {
	if m.latency != nil {
		m.latency.UpdateDuration(start)
	}
}

// Count returns the calls that ended with result (for tests and stats).
func (c *Caller) Count(result string) uint64 {
	if n := c.m.calls[result]; n != nil {
		return n.Get()
	}
	return 0
}
