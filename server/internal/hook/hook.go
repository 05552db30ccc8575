// Package hook calls the application's backend over HTTP: one Caller per
// configured hook URL (connect, subscribe, rpc, publish) posts a JSON
// request and hands the JSON answer back through a callback. It is how
// wspush lets the application decide what a client may do, without ever
// blocking an nbio callback or the hub.
//
// # Concurrency contract
//
//   - Call never blocks: it puts the call on the Caller's bounded queue or,
//     when the queue is full, the breaker is open or the Caller is stopped,
//     returns an error at once (ErrOverloaded, ErrUnavailable).
//   - A fixed pool of Concurrency worker goroutines per Caller takes calls
//     from the queue; each call also holds one slot of the Limit shared by
//     all Callers (the total cap). A worker runs the HTTP request and then
//     the call's done callback, on the worker goroutine: done must not block
//     for long (the gateway's writes are non-blocking).
//   - Every call ends in exactly one done, within its deadline (Timeout
//     from when Call was made, queueing included), except for calls still
//     queued when Run's context ends, which are answered ErrUnavailable.
//   - The breaker's fields are guarded by its mutex; counters and gauges
//     are atomics; Config is read-only after New.
//   - Lifecycle, as for every wspush component: New acquires (the queue,
//     the http.Client), Run starts the workers and returns once they have
//     exited after its context is done.
package hook

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"wspush/server/internal/metrics"
)

// Defaults; a zero Config field means its default.
const (
	DefaultTimeout          = 5 * time.Second
	DefaultConcurrency      = 32
	DefaultQueue            = 1024
	DefaultMaxResponseBytes = 64 << 10
	DefaultBreakerFailures  = 5
	DefaultBreakerCooldown  = 5 * time.Second
	DefaultTotal            = 256 // Limit: calls in flight over all hooks
)

// Config configures one hook.
type Config struct {
	// URL is the backend endpoint, http:// or https://.
	URL string
	// Timeout bounds a call from Call to its answer, queueing included
	// (default 5 s).
	Timeout time.Duration
	// Concurrency is the number of calls in flight to this hook at most
	// (default 32): the worker pool's size and the keep-alive pool's.
	Concurrency int
	// Queue bounds the calls waiting for a worker (default 1024); over it
	// Call returns ErrOverloaded.
	Queue int
	// MaxResponseBytes caps the answer's body (default 64 KiB); a longer
	// one is a bad response.
	MaxResponseBytes int
	// BreakerFailures consecutive failures (errors, timeouts, bad
	// responses) open the breaker (default 5), for BreakerCooldown
	// (default 5 s); then one probe call is let through (half-open): its
	// success closes the breaker, its failure opens it again.
	BreakerFailures int
	BreakerCooldown time.Duration
}

func (c Config) withDefaults() (Config, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return c, fmt.Errorf("hook: url %q: %w", c.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("hook: url %q: want http:// or https://host[:port]/path", c.URL)
	}
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.Queue = cmp.Or(c.Queue, DefaultQueue)
	c.MaxResponseBytes = cmp.Or(c.MaxResponseBytes, DefaultMaxResponseBytes)
	c.BreakerFailures = cmp.Or(c.BreakerFailures, DefaultBreakerFailures)
	c.BreakerCooldown = cmp.Or(c.BreakerCooldown, DefaultBreakerCooldown)
	if c.Timeout < 0 || c.Concurrency < 1 || c.Queue < 1 || c.MaxResponseBytes < 1 || c.BreakerFailures < 1 || c.BreakerCooldown < 0 {
		return c, errors.New("hook: timeout, concurrency, queue, response cap and breaker settings must be positive")
	}
	return c, nil
}

// Errors a call ends with (done's err), or Call returns.
var (
	// ErrOverloaded: the hook's queue is full; nothing was sent.
	ErrOverloaded = errors.New("hook: queue full")
	// ErrUnavailable: the backend could not be reached, the breaker is
	// open, or the hook is stopped.
	ErrUnavailable = errors.New("hook: backend unavailable")
	// ErrTimeout: no answer within the timeout.
	ErrTimeout = errors.New("hook: backend timed out")
	// ErrBadResponse: an answer that is not HTTP 200 with a JSON body
	// within the size cap.
	ErrBadResponse = errors.New("hook: bad backend response")
)

// Limit caps the calls in flight over every Caller that shares it.
type Limit struct{ slots chan struct{} }

// NewLimit returns a Limit of n calls (DefaultTotal if n is 0).
func NewLimit(n int) *Limit {
	return &Limit{slots: make(chan struct{}, max(cmp.Or(n, DefaultTotal), 1))}
}

// Done is a call's answer: the backend's JSON body, or an error.
type Done func(body []byte, err error)

type job struct {
	body     []byte
	deadline time.Time
	done     Done
}

// Caller is one hook.
type Caller struct {
	cfg    Config
	name   string
	limit  *Limit
	client *http.Client
	queue  chan job
	br     breaker
	m      callerMetrics

	stopped atomic.Bool
	wg      sync.WaitGroup
}

// New returns a Caller for cfg, named name in its metrics (label hook),
// sharing limit with other Callers; reg may be nil (no metrics).
func New(name string, cfg Config, limit *Limit, reg *metrics.Registry) (*Caller, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if limit == nil {
		limit = NewLimit(0)
	}
	tr := &http.Transport{
		Proxy:               nil, // the backend is the application's: never through an environment proxy
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		MaxConnsPerHost:     cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	c := &Caller{
		cfg:    cfg,
		name:   name,
		limit:  limit,
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		queue:  make(chan job, cfg.Queue),
	}
	c.br.failures, c.br.cooldown = cfg.BreakerFailures, cfg.BreakerCooldown
	c.m.register(reg, name, c)
	return c, nil
}

// Name returns the hook's name.
func (c *Caller) Name() string { return c.name }

// Timeout returns the hook's call timeout.
func (c *Caller) Timeout() time.Duration { return c.cfg.Timeout }

// Call posts body (JSON) to the hook and calls done with the answer on a
// worker goroutine. It never blocks: a full queue gives ErrOverloaded, an
// open breaker or a stopped Caller ErrUnavailable, and done is then not
// called.
func (c *Caller) Call(body []byte, done Done) error {
	if c.stopped.Load() {
		return fmt.Errorf("%w: server shutting down", ErrUnavailable)
	}
	if c.br.isOpen(time.Now()) {
		c.m.count(resultBreakerOpen)
		return fmt.Errorf("%w: circuit breaker open after %d failures in a row", ErrUnavailable, c.cfg.BreakerFailures)
	}
	select {
	case c.queue <- job{body: body, deadline: time.Now().Add(c.cfg.Timeout), done: done}:
		return nil
	default:
		c.m.count(resultOverloaded)
		return ErrOverloaded
	}
}

// Run starts the workers and waits for ctx; then it stops them, answers
// every call still queued with ErrUnavailable, and returns.
func (c *Caller) Run(ctx context.Context) error {
	stop := make(chan struct{})
	for range c.cfg.Concurrency {
		c.wg.Add(1)
		go c.work(stop)
	}
	<-ctx.Done()
	c.stopped.Store(true)
	close(stop)
	c.wg.Wait()
	for {
		select {
		case j := <-c.queue:
			j.done(nil, fmt.Errorf("%w: server shutting down", ErrUnavailable))
		default:
			c.client.CloseIdleConnections()
			return nil
		}
	}
}

func (c *Caller) work(stop <-chan struct{}) {
	defer c.wg.Done()
	for {
		select {
		case <-stop:
			return
		case j := <-c.queue:
			body, err := c.run(j)
			j.done(body, err)
		}
	}
}

// run makes one call: the breaker, a slot of the total limit, the request.
func (c *Caller) run(j job) ([]byte, error) {
	ctx, cancel := context.WithDeadline(context.Background(), j.deadline)
	defer cancel()
	if time.Now().After(j.deadline) {
		c.m.count(resultTimeout)
		return nil, fmt.Errorf("%w: waited %v in the queue", ErrTimeout, c.cfg.Timeout)
	}
	if !c.br.allow(time.Now()) {
		c.m.count(resultBreakerOpen)
		return nil, fmt.Errorf("%w: circuit breaker open", ErrUnavailable)
	}
	select {
	case c.limit.slots <- struct{}{}:
	case <-ctx.Done():
		c.br.record(false, time.Now())
		c.m.count(resultTimeout)
		return nil, fmt.Errorf("%w: waited %v for a free call slot", ErrTimeout, c.cfg.Timeout)
	}
	defer func() { <-c.limit.slots }()
	c.m.inFlight.Add(1)
	start := time.Now()
	body, result, err := c.post(ctx, j.body)
	c.m.inFlight.Add(-1)
	c.m.observe(start)
	c.m.count(result)
	c.br.record(result == resultOK, time.Now())
	return body, err
}

func (c *Caller) post(ctx context.Context, body []byte) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, resultUnavailable, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wspush-hook")
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, resultTimeout, fmt.Errorf("%w after %v", ErrTimeout, c.cfg.Timeout)
		}
		return nil, resultUnavailable, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.cfg.MaxResponseBytes)+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, resultTimeout, fmt.Errorf("%w after %v", ErrTimeout, c.cfg.Timeout)
	case err != nil:
		return nil, resultUnavailable, fmt.Errorf("%w: reading the answer: %w", ErrUnavailable, err)
	case resp.StatusCode != http.StatusOK:
		return nil, resultBadResponse, fmt.Errorf("%w: HTTP %d", ErrBadResponse, resp.StatusCode)
	case len(out) > c.cfg.MaxResponseBytes:
		return nil, resultBadResponse, fmt.Errorf("%w: answer over %d bytes", ErrBadResponse, c.cfg.MaxResponseBytes)
	case !json.Valid(out):
		return nil, resultBadResponse, fmt.Errorf("%w: answer is not JSON", ErrBadResponse)
	}
	return out, resultOK, nil
}
