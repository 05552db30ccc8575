// Package natsbus is the cluster bus: the bus seam backed by NATS
// JetStream, so that many wspush processes and hosts behave as one.
//
// One JetStream stream holds every topic's recent messages (a subject per
// topic, at most HistorySize messages per subject, for HistoryTTL) and the
// broadcasts. A publish on any node gets its topic's next sequence number by
// optimistic concurrency: the node publishes seq N+1 expecting the stream's
// last message on that subject to be the one that carried N
// (Nats-Expected-Last-Subject-Sequence); when another node got there first,
// it re-reads the last message and tries again. JetStream's acknowledgement
// means the message is stored: it survives the death of any wspush node.
//
// Every node reads the whole stream with an ordered consumer, in stream
// order, and applies each message to its local bus (package bus), which
// keeps the topic's history and latest value and hands the message to the
// hub. So every node sees the same messages with the same per-topic
// sequence numbers, in the same order, and a client can resume on any node
// with since/epoch. A node that starts late rebuilds its history from the
// stream; one that loses NATS keeps its clients, reports unhealthy, and
// catches up from where it stopped when NATS returns (the ordered consumer
// resumes after the last message it delivered).
//
// # Concurrency contract
//
//   - mu guards last, the per-topic position cache used to sequence
//     publishes. pubLocks serialize this node's publishes per topic stripe,
//     so that they do not race one another for a sequence number.
//   - The consumer callback runs on one nats.go goroutine, in stream order;
//     it is the only caller of the local bus's Apply methods.
//   - A stream message that cannot be read or applied, and every error the
//     consumer reports, is counted in wspush_cluster_errors_total{kind} and
//     logged at a bounded rate (problems.go): a node that silently drifts
//     from the cluster is the worst failure this package can have.
//   - Lifecycle, as for every wspush component: New connects and starts the
//     consumer; Run waits until its context is done, then stops the
//     consumer, closes the connection and returns.
package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"wspush/server/internal/bus"
	"wspush/server/internal/metrics"
	"wspush/server/wire"
)

// Config configures the cluster bus; zero means the default.
type Config struct {
	// URLs is the NATS server list, comma separated (nats://host:4222,…).
	URLs string
	// Creds is a NATS credentials file (JWT + nkey seed), if any.
	Creds string
	// TLSCA, TLSCert and TLSKey configure TLS to NATS, if set.
	TLSCA, TLSCert, TLSKey string
	// Stream is the JetStream stream name (default "WSPUSH").
	Stream string
	// Replicas is the stream's replica count (default 1).
	Replicas int
	// HistorySize and HistoryTTL bound the stream per topic, as for the
	// local bus.
	HistorySize int
	HistoryTTL  time.Duration
	// Name names this node's NATS connection.
	Name string
	// Logger receives the bus's log lines; nil means slog.Default().
	Logger *slog.Logger
}

const (
	subjectPrefix = "wspush.t."
	broadcastSubj = "wspush.b"
	hdrTopic      = "Wspush-Topic"
	hdrSeq        = "Wspush-Seq"
	hdrEpoch      = "Wspush-Epoch"
	hdrTS         = "Wspush-Ts"
	maxAttempts   = 100 // conflicts are retried until this many or opTimeout
	opTimeout     = 10 * time.Second
)

// subject maps a topic to its subject. Topic names may hold dots, which
// NATS reads as token separators, so the name is encoded.
func subject(topic string) string {
	if topic == wire.BroadcastTopic {
		return broadcastSubj
	}
	return subjectPrefix + base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(topic))
}

// publishBuckets are wspush_nats_publish_seconds's bucket bounds.
var publishBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

type position struct {
	streamSeq uint64 // stream seq of the topic's last message
	seq       uint64 // the topic's seq
	epoch     string
}

// Bus is the NATS-backed bus. It implements what the gateway and the
// publish API need; subscriptions are local and go to the local bus.
type Bus struct {
	cfg   Config
	local *bus.Bus
	hub   bus.Local
	nc    *nats.Conn
	js    jetstream.JetStream
	str   jetstream.Stream
	cc    jetstream.ConsumeContext

	mu       sync.Mutex // guards last
	last     map[string]position
	pubLocks [64]sync.Mutex

	applied    atomic.Uint64 // stream seq of the last message applied
	pending    atomic.Uint64 // messages the consumer has yet to deliver
	caughtUp   atomic.Bool
	problems   *problems
	pubLatency *metrics.Histogram
	reconnects *metrics.Counter
	publishes  *metrics.Counter
	conflicts  *metrics.Counter
}

// New connects to NATS, makes sure the stream exists and starts applying
// it to local. hub is asked whether deliveries are backing up. reg receives
// the bus's metrics.
func New(cfg Config, local *bus.Bus, hub bus.Local, reg *metrics.Registry) (*Bus, error) {
	if cfg.Stream == "" {
		cfg.Stream = "WSPUSH"
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = bus.DefaultHistorySize
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = bus.DefaultHistoryTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Bus{cfg: cfg, local: local, hub: hub, last: map[string]position{},
		problems: newProblems(cfg.Logger, reg),
		pubLatency: reg.NewHistogram("wspush_nats_publish_seconds",
			"Time from accepting a publish to JetStream's ack, retries included, in seconds.", publishBuckets),
		reconnects: reg.NewCounter("wspush_nats_reconnects_total", "Reconnections to NATS."),
		publishes:  reg.NewCounter("wspush_nats_publishes_total", "Publishes stored in the JetStream stream by this node."),
		conflicts: reg.NewCounter("wspush_nats_publish_conflicts_total",
			"Publishes retried because another node published to the same topic first."),
	}
	reg.NewGauge("wspush_nats_consumer_pending", "Stream messages the consumer has yet to deliver to this node.",
		func() float64 { return float64(b.pending.Load()) })
	reg.NewGauge("wspush_nats_applied_stream_seq", "Stream sequence of the last message this node applied.",
		func() float64 { return float64(b.applied.Load()) })
	reg.NewGauge("wspush_nats_connected", "1 while connected to NATS, else 0.", func() float64 {
		if b.nc != nil && b.nc.IsConnected() {
			return 1
		}
		return 0
	})

	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { b.reconnects.Inc() }),
	}
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	nc, err := nats.Connect(cfg.URLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect %s: %w", cfg.URLs, err)
	}
	b.nc = nc
	if err := b.start(); err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bus) start() error {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("natsbus: %w", err)
	}
	b.js = js
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	b.str, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              b.cfg.Stream,
		Subjects:          []string{subjectPrefix + ">", broadcastSubj},
		MaxMsgsPerSubject: int64(b.cfg.HistorySize),
		MaxAge:            b.cfg.HistoryTTL,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		Replicas:          b.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("natsbus: stream %s: %w", b.cfg.Stream, err)
	}
	cons, err := js.OrderedConsumer(ctx, b.cfg.Stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("natsbus: consumer: %w", err)
	}
	info, err := b.str.Info(ctx)
	if err == nil && info.State.Msgs == 0 {
		b.caughtUp.Store(true)
	}
	b.cc, err = cons.Consume(b.apply, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		b.problems.report(kindConsume, err)
	}))
	if err != nil {
		return fmt.Errorf("natsbus: consume: %w", err)
	}
	return nil
}

// apply hands one stream message to the local bus, in stream order.
func (b *Bus) apply(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		b.problems.report(kindMetadata, err, "subject", msg.Subject())
		return
	}
	h := msg.Headers()
	seq, err1 := strconv.ParseUint(h.Get(hdrSeq), 10, 64)
	ts, err2 := strconv.ParseInt(h.Get(hdrTS), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		b.problems.report(kindHeader, err, "subject", msg.Subject(), "stream_seq", md.Sequence.Stream)
		return
	}
	topic, epoch := h.Get(hdrTopic), h.Get(hdrEpoch)
	if msg.Subject() == broadcastSubj {
		b.local.ApplyBroadcast(epoch, seq, ts, msg.Data())
	} else if err := b.local.Apply(topic, epoch, seq, ts, msg.Data()); err != nil {
		b.problems.report(kindApply, err, "topic", topic, "seq", seq, "stream_seq", md.Sequence.Stream)
	}
	b.remember(topic, position{streamSeq: md.Sequence.Stream, seq: seq, epoch: epoch})
	b.applied.Store(md.Sequence.Stream)
	b.pending.Store(md.NumPending)
	if md.NumPending == 0 {
		b.caughtUp.Store(true)
	}
}

func (b *Bus) remember(topic string, p position) {
	b.mu.Lock()
	if cur, ok := b.last[topic]; !ok || p.streamSeq > cur.streamSeq {
		b.last[topic] = p
	}
	b.mu.Unlock()
}

// position returns the topic's last position, asking the stream when this
// node does not know it (or fresh is set).
func (b *Bus) position(ctx context.Context, topic string, fresh bool) (position, error) {
	if !fresh {
		b.mu.Lock()
		p, ok := b.last[topic]
		b.mu.Unlock()
		if ok {
			return p, nil
		}
	}
	raw, err := b.str.GetLastMsgForSubject(ctx, subject(topic))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return position{}, nil
	}
	if err != nil {
		return position{}, fmt.Errorf("natsbus: last message of %q: %w", topic, err)
	}
	seq, _ := strconv.ParseUint(raw.Header.Get(hdrSeq), 10, 64)
	p := position{streamSeq: raw.Sequence, seq: seq, epoch: raw.Header.Get(hdrEpoch)}
	b.remember(topic, p)
	return p, nil
}

func newEpoch() string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// publish sequences data on topic through the stream and returns the seq
// and time it was given; it returns once JetStream has stored it.
func (b *Bus) publish(topic string, data []byte) (uint64, int64, error) {
	if b.hub.Overloaded() {
		return 0, 0, bus.ErrOverloaded
	}
	if !b.nc.IsConnected() {
		return 0, 0, fmt.Errorf("%w: not connected to NATS", bus.ErrOverloaded)
	}
	hs := fnv.New32a()
	_, _ = hs.Write([]byte(topic))
	l := &b.pubLocks[hs.Sum32()%uint32(len(b.pubLocks))]
	l.Lock()
	defer l.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	start := time.Now()
	fresh := false
	for attempt := 0; attempt < maxAttempts; attempt++ {
		p, err := b.position(ctx, topic, fresh)
		if err != nil {
			return 0, 0, err
		}
		epoch := p.epoch
		if p.seq == 0 || epoch == "" {
			epoch = newEpoch()
		}
		ts := time.Now().UnixNano()
		msg := nats.NewMsg(subject(topic))
		msg.Header.Set(hdrTopic, topic)
		msg.Header.Set(hdrSeq, strconv.FormatUint(p.seq+1, 10))
		msg.Header.Set(hdrEpoch, epoch)
		msg.Header.Set(hdrTS, strconv.FormatInt(ts, 10))
		msg.Data = data
		ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(p.streamSeq))
		if err == nil {
			b.remember(topic, position{streamSeq: ack.Sequence, seq: p.seq + 1, epoch: epoch})
			b.publishes.Inc()
			b.pubLatency.UpdateDuration(start)
			return p.seq + 1, ts, nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			b.conflicts.Inc()
			fresh = true // another node published first: read its position
			continue
		}
		// Not stored: the publisher may retry (HTTP 503).
		return 0, 0, fmt.Errorf("%w: natsbus: publish to %q: %w", bus.ErrOverloaded, topic, err)
	}
	return 0, 0, fmt.Errorf("%w: natsbus: %q kept changing under %d attempts", bus.ErrOverloaded, topic, maxAttempts)
}

// Publish sequences data on topic across the cluster. The message reaches
// this node's subscribers, like every node's, through the stream.
func (b *Bus) Publish(topic string, data []byte) (*bus.Message, error) {
	if err := wire.ValidTopic(topic); err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	if len(data) > b.local.MaxDataBytes() {
		return nil, fmt.Errorf("%w: %d bytes, the cap is %d", bus.ErrTooLarge, len(data), b.local.MaxDataBytes())
	}
	seq, ts, err := b.publish(topic, data)
	if err != nil {
		return nil, err
	}
	return &bus.Message{Seq: seq, TS: ts, Data: data}, nil
}

// Broadcast sends data to every client of every node.
func (b *Bus) Broadcast(data []byte) (*bus.Message, error) {
	if len(data) > b.local.MaxDataBytes() {
		return nil, fmt.Errorf("%w: %d bytes, the cap is %d", bus.ErrTooLarge, len(data), b.local.MaxDataBytes())
	}
	seq, ts, err := b.publish(wire.BroadcastTopic, data)
	if err != nil {
		return nil, err
	}
	return &bus.Message{Seq: seq, TS: ts, Data: data}, nil
}

// Subscribe starts a subscription on this node (see bus.Bus.Subscribe).
func (b *Bus) Subscribe(s bus.Subscription) error { return b.local.Subscribe(s) }

// Unsubscribe ends a subscription on this node.
func (b *Bus) Unsubscribe(s bus.Subscription) error { return b.local.Unsubscribe(s) }

// Topics describes the topics this node knows.
func (b *Bus) Topics() []bus.TopicInfo { return b.local.Topics() }

// Topic describes one topic as this node knows it.
func (b *Bus) Topic(name string) (bus.TopicInfo, bool) { return b.local.Topic(name) }

// MaxDataBytes returns the cap on a published value.
func (b *Bus) MaxDataBytes() int { return b.local.MaxDataBytes() }

// Healthy returns nil while the node is connected to NATS and has applied
// the stream as it stood when it started.
func (b *Bus) Healthy() error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("natsbus: not connected to NATS (%s)", b.nc.Status())
	}
	if !b.caughtUp.Load() {
		return fmt.Errorf("natsbus: catching up with the stream (%d pending)", b.pending.Load())
	}
	return nil
}

// Run returns nil when ctx is done, having stopped applying the stream and
// closed the NATS connection.
func (b *Bus) Run(ctx context.Context) error {
	<-ctx.Done()
	if b.cc != nil {
		b.cc.Stop()
	}
	b.nc.Close()
	return nil
}
