// Package webhook tells the application about events on this node by
// POSTing them, batched and signed, to one URL (-webhook-url): a topic
// becoming occupied (its first local subscriber) or vacated (its last left),
// a connection closing (client id, user, reason), and, reserved for the
// presence feature, a user joining or leaving a topic.
//
// # Concurrency contract
//
//   - The producer calls (TopicOccupancy, ConnectionClosed, Presence) may be
//     called from any goroutine, also with a lock held (the bus calls
//     TopicOccupancy under a topic's lock): each is one non-blocking send on
//     a bounded channel of Config.Buffer events. Over it the event is
//     dropped and counted (cause "buffer_full"); nothing ever waits for the
//     receiver. A nil *Sender accepts and ignores every call, so producers
//     need no check.
//   - One goroutine, Run, takes events off the channel, batches them (up to
//     Config.Batch events or Config.MaxDelay after the first), and POSTs
//     each batch, retrying with exponential backoff and jitter up to
//     Config.MaxAttempts attempts or Config.MaxRetryTime; then the batch is
//     dropped and counted. While it retries, new events wait in the channel
//     (and over its size are dropped): delivery is at most one batch in
//     flight, in order.
//   - Lifecycle, as for every wspush component: New acquires nothing but
//     the channel; Run delivers until its context is done, then flushes
//     what is queued within Config.FlushTimeout, counts the rest as dropped
//     (cause "shutdown"), and returns. Events produced after that are
//     dropped with the same cause.
//
// The wire format and how to verify a signature are in docs/backend.md
// ("Webhooks"); Verify is the Go reference.
package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"wspush/server/internal/metrics"
)

// Kind is an event's kind, its "kind" in the JSON.
type Kind string

// The event kinds.
const (
	// TopicOccupied: a topic got its first subscriber on this node.
	TopicOccupied Kind = "topic_occupied"
	// TopicVacated: a topic's last subscriber on this node left.
	TopicVacated Kind = "topic_vacated"
	// ConnectionClosed: a WebSocket connection closed.
	ConnectionClosed Kind = "connection_closed"
	// PresenceJoin and PresenceLeave are reserved for presence (a user
	// joins or leaves a topic's member list); their producer is Presence.
	PresenceJoin  Kind = "presence_join"
	PresenceLeave Kind = "presence_leave"
)

// Kinds lists every kind, in the order of their bits.
var Kinds = []Kind{TopicOccupied, TopicVacated, ConnectionClosed, PresenceJoin, PresenceLeave}

func (k Kind) bit() uint8 {
	for i, v := range Kinds {
		if v == k {
			return 1 << i
		}
	}
	return 0
}

// ParseKinds reads a comma-separated list of kinds; "" and "all" are every
// kind.
func ParseKinds(s string) ([]Kind, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return nil, nil
	}
	var ks []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		if k.bit() == 0 {
			return nil, fmt.Errorf("webhook: unknown event kind %q (want %s)", k, kindList())
		}
		ks = append(ks, k)
	}
	return ks, nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// Event is one event as the receiver gets it.
type Event struct {
	// ID increases by one per event produced by this process, so that a
	// receiver can drop the duplicates a retry may bring.
	ID   uint64 `json:"id"`
	Kind Kind   `json:"kind"`
	// TS is when the event happened, Unix milliseconds.
	TS    int64  `json:"ts"`
	Topic string `json:"topic,omitempty"`
	// Client is the connection's id (the welcome's "id").
	Client string `json:"client,omitempty"`
	// User is the connection's user (the JWT sub); empty without auth.
	User string `json:"user,omitempty"`
	// Reason is why a connection closed: the label of
	// wspush_connections_closed_total ("client", "idle", "admin", ...).
	Reason string `json:"reason,omitempty"`

	queued int64 // Unix ns when it entered the channel, for the latency histogram
}

// Body is the JSON body of one POST.
type Body struct {
	Events []Event `json:"events"`
}

// Config configures the sender; zero means the default.
type Config struct {
	// URL receives the POSTs (http or https); empty turns webhooks off.
	URL string
	// Secret keys the HMAC-SHA256 signature (required with URL).
	Secret string
	// Events are the kinds sent; empty means all.
	Events []Kind
	// Batch is the most events in one POST (default 100).
	Batch int
	// Buffer is the most events waiting (default 10,000); over it new
	// events are dropped.
	Buffer int
	// MaxDelay is the longest an event waits for its batch to fill
	// (default 1 s).
	MaxDelay time.Duration
	// Timeout bounds one POST (default 5 s).
	Timeout time.Duration
	// MaxAttempts bounds the POSTs of one batch (default 6), MaxRetryTime
	// the time from its first to its last (default 30 s).
	MaxAttempts  int
	MaxRetryTime time.Duration
	// Backoff is the wait after the first failure (default 200 ms); it
	// doubles per attempt up to MaxBackoff (default 5 s), each wait drawn
	// at random from its upper half.
	Backoff, MaxBackoff time.Duration
	// FlushTimeout bounds the flush on shutdown (default 5 s).
	FlushTimeout time.Duration
	// Logger gets failed deliveries (at most one line per batch); nil
	// means slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultBatch        = 100
	DefaultBuffer       = 10_000
	DefaultMaxDelay     = time.Second
	DefaultTimeout      = 5 * time.Second
	DefaultMaxAttempts  = 6
	DefaultMaxRetryTime = 30 * time.Second
	DefaultBackoff      = 200 * time.Millisecond
	DefaultMaxBackoff   = 5 * time.Second
	DefaultFlushTimeout = 5 * time.Second
	// MaxBatch and MaxBuffer cap the flags.
	MaxBatch  = 10_000
	MaxBuffer = 1_000_000
)

func (c Config) withDefaults() Config {
	pos := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	dur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pos(&c.Batch, DefaultBatch)
	pos(&c.Buffer, DefaultBuffer)
	pos(&c.MaxAttempts, DefaultMaxAttempts)
	dur(&c.MaxDelay, DefaultMaxDelay)
	dur(&c.Timeout, DefaultTimeout)
	dur(&c.MaxRetryTime, DefaultMaxRetryTime)
	dur(&c.Backoff, DefaultBackoff)
	dur(&c.MaxBackoff, DefaultMaxBackoff)
	dur(&c.FlushTimeout, DefaultFlushTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the settings a user gives (URL, secret, sizes).
func (c Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("-webhook-url must be an http:// or https:// URL, not %q", c.URL))
	}
	if len(c.Secret) < MinSecretBytes {
		errs = append(errs, fmt.Errorf("-webhook-secret must be at least %d bytes (prefer WSPUSH_WEBHOOK_SECRET)", MinSecretBytes))
	}
	if c.Batch < 0 || c.Batch > MaxBatch {
		errs = append(errs, fmt.Errorf("-webhook-batch must be 0 (default) to %d", MaxBatch))
	}
	if c.Buffer < 0 || c.Buffer > MaxBuffer {
		errs = append(errs, fmt.Errorf("-webhook-buffer must be 0 (default) to %d", MaxBuffer))
	}
	return errors.Join(errs...)
}

// MinSecretBytes is the shortest secret Validate accepts.
const MinSecretBytes = 16

// Causes of a dropped event, the label values of
// wspush_webhook_events_dropped_total.
const (
	DropBufferFull = "buffer_full"       // the channel was full
	DropExhausted  = "retries_exhausted" // every attempt failed
	DropRejected   = "rejected"          // the receiver answered 4xx (not 408/429): not retried
	DropShutdown   = "shutdown"          // still queued when the flush time ran out
)

var dropCauses = []string{DropBufferFull, DropExhausted, DropRejected, DropShutdown}

// Sender produces and delivers the events.
type Sender struct {
	cfg     Config
	mask    uint8
	ch      chan Event
	client  *http.Client
	ids     atomic.Uint64
	stopped atomic.Bool // set when Run starts its flush

	queued, sent, batches, retries *metrics.Counter
	dropped                        map[string]*metrics.Counter // read-only after New
	latency                        *metrics.Histogram
}

// New returns a sender for cfg (cfg.URL set) whose metrics go to reg.
func New(cfg Config, reg *metrics.Registry) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	cfg = cfg.withDefaults()
	s := &Sender{cfg: cfg, ch: make(chan Event, cfg.Buffer), dropped: map[string]*metrics.Counter{}}
	for _, k := range cfg.Events {
		s.mask |= k.bit()
	}
	if len(cfg.Events) == 0 {
		s.mask = 0xff
	}
	s.client = &http.Client{
		Timeout: cfg.Timeout,
		// One request at a time: one kept-alive connection is enough.
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second,
			TLSHandshakeTimeout: cfg.Timeout, ResponseHeaderTimeout: cfg.Timeout},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.queued = reg.NewCounter("wspush_webhook_events_queued_total", "Webhook events queued for delivery.")
	s.sent = reg.NewCounter("wspush_webhook_events_sent_total", "Webhook events delivered (their batch was answered 2xx).")
	s.batches = reg.NewCounter("wspush_webhook_batches_total", "Webhook batches delivered (answered 2xx).")
	s.retries = reg.NewCounter("wspush_webhook_retries_total", "Webhook POSTs retried after a failure (network error, timeout, 408, 429 or 5xx).")
	for _, c := range dropCauses {
		s.dropped[c] = reg.NewCounter("wspush_webhook_events_dropped_total", "Webhook events dropped, by cause.", "cause", c)
	}
	s.latency = reg.NewHistogram("wspush_webhook_latency_seconds",
		"Time from a webhook event being queued to its batch being answered 2xx, in seconds (per batch, its oldest event).", latencyBuckets)
	reg.NewGauge("wspush_webhook_queue", "Webhook events waiting for delivery.", func() float64 { return float64(len(s.ch)) })
	return s, nil
}

var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Dropped returns the events dropped for cause.
func (s *Sender) Dropped(cause string) uint64 {
	if c, ok := s.dropped[cause]; ok {
		return c.Get()
	}
	return 0
}

// TopicOccupancy is the bus's producer call: occupied when topic got its
// first local subscriber, not when its last one left.
func (s *Sender) TopicOccupancy(topic string, occupied bool) {
	k := TopicVacated
	if occupied {
		k = TopicOccupied
	}
	s.emit(Event{Kind: k, Topic: topic})
}

// ConnectionClosed is the gateway's producer call for a closed connection:
// its id, its user ("" without auth) and the close reason's label.
func (s *Sender) ConnectionClosed(client, user, reason string) {
	s.emit(Event{Kind: ConnectionClosed, Client: client, User: user, Reason: reason})
}

// Presence is the producer call reserved for presence: user (on connection
// client) joined topic's member list, or left it.
func (s *Sender) Presence(topic, user, client string, joined bool) {
	k := PresenceLeave
	if joined {
		k = PresenceJoin
	}
	s.emit(Event{Kind: k, Topic: topic, User: user, Client: client})
}

// emit queues e without blocking: over the buffer, or after shutdown, it
// is dropped and counted.
func (s *Sender) emit(e Event) {
	if s == nil || s.mask&e.Kind.bit() == 0 {
		return
	}
	if s.stopped.Load() {
		s.dropped[DropShutdown].Inc()
		return
	}
	now := time.Now()
	e.ID, e.TS, e.queued = s.ids.Add(1), now.UnixMilli(), now.UnixNano()
	select {
	case s.ch <- e:
		s.queued.Inc()
	default:
		s.dropped[DropBufferFull].Inc()
	}
}
