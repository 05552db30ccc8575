package metrics

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// Counter is a count that only goes up. Inc, Add and Get are single atomic
// operations: no lock, no allocation. Its Registry exposes it to Prometheus
// (as a counter, read at scrape time).
type Counter struct{ n atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds n, which must not be negative.
func (c *Counter) Add(n int) { c.n.Add(uint64(n)) }

// Get returns the count.
func (c *Counter) Get() uint64 { return c.n.Load() }

func (c *Counter) value() float64 { return float64(c.n.Load()) }

// Histogram is a Prometheus histogram with fixed buckets. Update does not
// allocate and takes no lock (client_golang's hot/cold counts).
type Histogram struct{ h prometheus.Histogram }

// Update records one observation, in the histogram's unit (seconds here).
func (h *Histogram) Update(v float64) { h.h.Observe(v) }

// UpdateDuration records the time since start, in seconds.
func (h *Histogram) UpdateDuration(start time.Time) { h.h.Observe(time.Since(start).Seconds()) }

// Registry is one metric set's Prometheus registry, with the process and Go
// runtime collectors. Every family it holds has HELP text and a TYPE.
//
// Registration (the New* methods) panics on a name registered twice with a
// different type, help or label names, or on the same labels twice: a
// programming error, found by the first test that starts a server. Call the
// New* methods before serving; reading and scraping are safe concurrently.
type Registry struct{ reg *prometheus.Registry }

func newRegistry() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return &Registry{reg: reg}
}

// labels turns name/value pairs into const labels.
func labels(pairs []string) prometheus.Labels {
	if len(pairs)%2 != 0 {
		panic(fmt.Sprintf("metrics: odd label pairs %q", pairs))
	}
	if len(pairs) == 0 {
		return nil
	}
	l := prometheus.Labels{}
	for i := 0; i < len(pairs); i += 2 {
		l[pairs[i]] = pairs[i+1]
	}
	return l
}

// NewCounter registers a counter named name (ending in _total) with the
// given help text and label name/value pairs.
func (r *Registry) NewCounter(name, help string, labelPairs ...string) *Counter {
	c := &Counter{}
	r.NewCounterFunc(name, help, c.value, labelPairs...)
	return c
}

// NewCounterFunc registers a counter whose value f returns at scrape time;
// f must be safe for concurrent use and never decrease.
func (r *Registry) NewCounterFunc(name, help string, f func() float64, labelPairs ...string) {
	r.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels(labelPairs)}, f))
}

// NewGauge registers a gauge whose value f returns at scrape time; f must be
// safe for concurrent use.
func (r *Registry) NewGauge(name, help string, f func() float64, labelPairs ...string) {
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels(labelPairs)}, f))
}

// NewHistogram registers a histogram with the given upper bucket bounds
// (sorted; +Inf is implied).
func (r *Registry) NewHistogram(name, help string, buckets []float64, labelPairs ...string) *Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: labels(labelPairs)})
	r.reg.MustRegister(h)
	return &Histogram{h: h}
}

// Handler serves the registry in the Prometheus text format (protobuf when
// the scraper asks for it), gzipped when the scraper accepts it. A
// collector's error is logged and the rest is served.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(slog.Default().Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// WriteText writes every family in the Prometheus text format.
func (r *Registry) WriteText(w io.Writer) error {
	mfs, err := r.reg.Gather()
	if err != nil {
		return fmt.Errorf("metrics: gather: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("metrics: encode %s: %w", mf.GetName(), err)
		}
	}
	return nil
}
