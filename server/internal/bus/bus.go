// Package bus is wspush's in-process message bus: it gives every publish
// its topic's next sequence number, keeps each topic's recent history for
// resume and its newest value for latest-mode subscribers, and hands each
// message, in order, to the local side (the hub) that writes it to this
// node's subscribers. The gateway and the publish API use it through small
// interfaces of their own, so that on a cluster node natsbus stands in
// front of it (sequencing publishes in NATS, then applying them here); the
// hub receives from it through Local.
//
// # Concurrency contract
//
//   - b.mu guards the topic map. Each Topic's mu guards its sequence,
//     history, subscriber count and liveness; it is held while a publish is
//     sequenced and handed to Local.Deliver, and while a subscription starts
//     or ends and is handed to Local.Subscribe or Local.Unsubscribe (on the
//     caller's goroutine), so that Local sees publishes and subscription
//     changes of one topic in one total order (subscribe.go). Subscriptions
//     are plain values: no caller code runs under a topic lock. Lock
//     order: b.mu, then a Topic's mu, then hmu; no goroutine holds two
//     Topic locks at once.
//   - hmu guards the bus-wide history queue (hq, hqHead, live, gseq), the
//     queue of topics waiting for a trim (trims, each Topic's trimQueued)
//     and every write of a Topic's histFrom and of histBytes (both atomics,
//     so that since and the metrics read them without hmu). A publish
//     that evicts another topic's history trims that topic's ring after
//     releasing its own topic's lock (history.go).
//   - bmu serializes broadcasts and their handing to Local.Broadcast.
//   - sealed (an atomic) is set once, by Export; a publish reads it under
//     its topic's lock (a broadcast under bmu), so that every publish is
//     either in the export or refused with ErrSealed (persist.go).
//   - A Message is immutable once published and may be shared freely.
//   - Run sweeps idle topics until its context is done (run.go).
package bus

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"wspush/server/wire"
)

// Config configures a bus; zero means the default.
type Config struct {
	// HistorySize is how many recent messages a topic keeps (default 100).
	HistorySize int
	// HistoryTTL is how long a message stays replayable (default 5m).
	HistoryTTL time.Duration
	// MaxTopics caps the number of topics (default 100,000).
	MaxTopics int
	// MaxDataBytes caps a published value (default 64 KiB).
	MaxDataBytes int
	// MaxHistoryBytes caps the history of all topics together (default
	// 512 MiB); over it the oldest entries leave first, whatever their
	// topic, and a resume into them gets history_gone.
	MaxHistoryBytes int64
}

// Defaults.
const (
	DefaultHistorySize  = 100
	DefaultHistoryTTL   = 5 * time.Minute
	DefaultMaxTopics    = 100_000
	DefaultMaxDataBytes = 64 << 10
)

// Errors a publish or subscription can meet.
var (
	ErrOverloaded   = errors.New("bus: overloaded, retry later")
	ErrTooManyTopic = errors.New("bus: too many topics")
	ErrTooLarge     = errors.New("bus: data too large")
	// ErrNotSubscribed: Unsubscribe found no such subscription.
	ErrNotSubscribed = errors.New("bus: not subscribed")
)

// Local is the node-local side of the bus: the hub. The bus calls its
// methods; nothing else should.
type Local interface {
	// Deliver hands a topic message to the node's stream subscribers. It is
	// called with the topic's lock held, in sequence order, and must not
	// block.
	Deliver(m *Message)
	// Subscribe starts s on t, beginning at st. It is called with t's lock
	// held (so that no publish of t comes between st and the first live
	// message), from the goroutine that called Bus.Subscribe; it must hand
	// the subscription on before returning and must not block. An error
	// (a subscriber Local does not know) means nothing was started.
	Subscribe(t *Topic, s Subscription, st Start) error
	// Unsubscribe ends s on t, with t's lock held, from the goroutine that
	// called Bus.Unsubscribe; it reports false, changing nothing, when
	// s.Subscriber has no subscription to t. It must not block.
	Unsubscribe(t *Topic, s Subscription) bool
	// Broadcast hands a broadcast to every client, in order; it must not
	// block.
	Broadcast(m *Message)
	// Overloaded reports that deliveries are backing up; publishes are then
	// refused with ErrOverloaded.
	Overloaded() bool
}

// Message is one sequenced publish.
type Message struct {
	Topic *Topic // nil for a broadcast
	Seq   uint64
	TS    int64  // Unix ns when the bus accepted it
	Data  []byte // the JSON value
	// Frame is the whole WebSocket frame of the msg, encoded once and
	// written as is to every subscriber.
	Frame []byte
	// Notice, when set, goes to stream subscribers before Frame: a
	// subscribed frame telling them the topic's new epoch (and
	// history_gone if this node missed messages). See Apply.
	Notice []byte
	// NoticeFrame is Notice followed by Frame, so that a subscriber gets
	// both in one write (nil without a notice).
	NoticeFrame []byte

	deflateOnce sync.Once
	deflated    []byte

	gseq   uint64 // bus-wide history sequence; set under hmu
	hbytes int64  // what the message counts for in history
}

// FrameFor returns the frame to write to a client: compressed (once, for
// all such clients) when the client negotiated permessage-deflate and
// compression makes the message smaller, the plain frame otherwise.
func (m *Message) FrameFor(deflate bool) []byte {
	if !deflate {
		return m.Frame
	}
	m.deflateOnce.Do(func() {
		if f, ok := wire.DeflateFrame(wire.OpText, wire.Payload(m.Frame)); ok {
			m.deflated = f
		}
	})
	if m.deflated != nil {
		return m.deflated
	}
	return m.Frame
}

// Topic is one topic's state.
type Topic struct {
	name   string
	latest atomic.Pointer[Message] // newest message, read lock-free

	mu      sync.Mutex
	epoch   string
	seq     uint64
	hist    []*Message // ring of up to HistorySize messages, grown on demand
	head    int        // index of the oldest in hist
	n       int        // messages in hist (dead ones included until trimmed)
	subs    int        // local subscriptions
	lastPub int64      // Unix ns
	dead    bool       // swept: look the topic up again
	remote  int64      // subscriptions on other nodes, as presence last said (presence.go)
	// count is subs+remote, the cluster-wide count ticks carry
	// (presence.go); written under mu, read lock-free.
	count atomic.Int64

	// histFrom is the first bus-wide history seq still live in this
	// topic: older entries in hist were evicted and wait for trim.
	// Written under the bus's hmu (and t.mu, but for an eviction).
	histFrom   atomic.Uint64
	trimQueued bool // in the bus's trims; guarded by hmu
}

// Name returns the topic's name.
func (t *Topic) Name() string { return t.name }

// Epoch returns the topic's history incarnation: it changes when the
// history is lost (a restart, or the topic was swept while idle).
func (t *Topic) Epoch() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.epoch
}

// Latest returns the topic's newest message, or nil.
func (t *Topic) Latest() *Message { return t.latest.Load() }

// Bus is the in-process bus. Create it with New.
type Bus struct {
	cfg   Config
	local Local

	mu     sync.RWMutex
	topics map[string]*Topic

	bmu      sync.Mutex // serializes broadcasts; guards bseq and bepoch
	bseq     uint64
	bepoch   string
	now      func() time.Time
	messages atomic.Uint64
	sealed   atomic.Bool // set by Export: publishes are refused (persist.go)

	hmu       sync.Mutex // see the package doc and history.go
	hq        []entry    // history entries in publish order, from hqHead
	hqHead    int
	live      int // live entries in hq
	gseq      uint64
	trims     []*Topic // topics with evicted entries still in their rings
	ntrims    atomic.Int32
	histBytes atomic.Int64
	evictions atomic.Uint64

	// occupancy is told when a topic's local subscriptions go from 0 to 1
	// and from 1 to 0; set before use (SetOccupancy, subscribe.go).
	occupancy func(topic string, occupied bool)
	// presence is told of every subscription; set before use
	// (SetPresence, presence.go).
	presence Presence
}

// New returns a bus delivering to local.
func New(cfg Config, local Local) *Bus {
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = DefaultHistorySize
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = DefaultHistoryTTL
	}
	if cfg.MaxTopics <= 0 {
		cfg.MaxTopics = DefaultMaxTopics
	}
	if cfg.MaxDataBytes <= 0 {
		cfg.MaxDataBytes = DefaultMaxDataBytes
	}
	if cfg.MaxHistoryBytes <= 0 {
		cfg.MaxHistoryBytes = DefaultMaxHistoryBytes
	}
	return &Bus{cfg: cfg, local: local, topics: map[string]*Topic{}, now: time.Now}
}

// MaxDataBytes returns the cap on a published value.
func (b *Bus) MaxDataBytes() int { return b.cfg.MaxDataBytes }

// Published returns the number of messages published, broadcasts included.
func (b *Bus) Published() uint64 { return b.messages.Load() }

func newEpoch() string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// lock returns the named topic, created if need be, with its lock held.
func (b *Bus) lock(name string, create bool) (*Topic, error) {
	for {
		b.mu.RLock()
		t := b.topics[name]
		b.mu.RUnlock()
		if t == nil {
			if !create {
				return nil, nil
			}
			b.mu.Lock()
			if t = b.topics[name]; t == nil {
				if len(b.topics) >= b.cfg.MaxTopics {
					b.mu.Unlock()
					return nil, ErrTooManyTopic
				}
				t = &Topic{name: name, epoch: newEpoch()} // hist grows on the first publish
				b.topics[name] = t
			}
			b.mu.Unlock()
		}
		t.mu.Lock()
		if !t.dead {
			return t, nil
		}
		t.mu.Unlock()
	}
}

// Publish sequences data (a valid JSON value, which the caller checked)
// on topic and delivers it. The returned message holds its seq.
func (b *Bus) Publish(topic string, data []byte) (*Message, error) {
	if err := wire.ValidTopic(topic); err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	if len(data) > b.cfg.MaxDataBytes {
		return nil, fmt.Errorf("%w: %d bytes, the cap is %d", ErrTooLarge, len(data), b.cfg.MaxDataBytes)
	}
	if b.local.Overloaded() {
		return nil, ErrOverloaded
	}
	t, err := b.lock(topic, true)
	if err != nil {
		return nil, err
	}
	if b.sealed.Load() { // checked under t's lock: see Export
		t.mu.Unlock()
		return nil, ErrSealed
	}
	m := b.append(t, t.seq+1, b.now().UnixNano(), data, nil)
	t.mu.Unlock()
	b.trimQueuedTopics()
	return m, nil
}

// append records and delivers message seq of t; t's lock is held.
func (b *Bus) append(t *Topic, seq uint64, ts int64, data, notice []byte) *Message {
	t.seq = seq
	m := t.message(seq, ts, data, notice)
	b.remember(t, m)
	t.lastPub = ts
	t.latest.Store(m)
	b.messages.Add(1)
	b.local.Deliver(m)
	return m
}

// message encodes message seq of t (its frame holds the one copy of data).
func (t *Topic) message(seq uint64, ts int64, data, notice []byte) *Message {
	m := &Message{Topic: t, Seq: seq, TS: ts, Notice: notice}
	m.Frame = wire.EndFrame(wire.AppendMsg(wire.BeginFrame(make([]byte, 0, wire.MaxHeader+wire.MsgOverhead+len(t.name)+len(data))), t.name, seq, ts, data), wire.OpText)
	// The frame ends with the value and "}": keep that copy only, so that
	// history holds one copy of the value (and the caller's buffer goes).
	m.Data = m.Frame[len(m.Frame)-1-len(data) : len(m.Frame)-1 : len(m.Frame)-1]
	if notice != nil {
		m.NoticeFrame = append(append(make([]byte, 0, len(notice)+len(m.Frame)), notice...), m.Frame...)
	}
	return m
}

// Apply records and delivers a message sequenced elsewhere (by a cluster
// bus): seq in incarnation epoch of topic, accepted at ts. Messages must
// come in order; a repeat is ignored. A new epoch, or a gap (messages this
// node never saw, e.g. expired before it started), starts the topic's local
// history afresh at seq, so that a resume from before it is answered with
// history_gone rather than a silent gap; live subscribers are told with a
// subscribed frame carrying the new epoch (and history_gone when messages
// were missed) before the message.
func (b *Bus) Apply(topic, epoch string, seq uint64, ts int64, data []byte) error {
	t, err := b.lock(topic, true)
	if err != nil {
		return err
	}
	defer b.trimQueuedTopics() // after the unlock below
	defer t.mu.Unlock()
	if b.sealed.Load() {
		return ErrSealed
	}
	if t.epoch == epoch && seq <= t.seq {
		return nil // seen
	}
	var notice []byte
	if t.epoch != epoch || seq != t.seq+1 {
		// Messages were missed unless this is a fresh topic's first one.
		gone := t.epoch == epoch || t.seq > 0 || seq != 1
		t.epoch = epoch
		b.clearHistory(t)
		notice = wire.EndFrame(wire.AppendSubscribed(wire.BeginFrame(nil), topic, wire.ModeStream, seq-1, epoch, gone, nil), wire.OpText)
	}
	b.append(t, seq, ts, data, notice)
	return nil
}

// ApplyBroadcast delivers a broadcast sequenced elsewhere, in incarnation
// epoch of the broadcast sequence; a repeat is ignored.
func (b *Bus) ApplyBroadcast(epoch string, seq uint64, ts int64, data []byte) {
	b.bmu.Lock()
	defer b.bmu.Unlock()
	if epoch == b.bepoch && seq <= b.bseq {
		return
	}
	b.bepoch, b.bseq = epoch, seq
	b.broadcast(seq, ts, data)
}

// Last returns the topic's last seq and its epoch ("" when there is no
// such topic here).
func (b *Bus) Last(topic string) (uint64, string) {
	t, _ := b.lock(topic, false)
	if t == nil {
		return 0, ""
	}
	defer t.mu.Unlock()
	return t.seq, t.epoch
}

// Broadcast sends data (a valid JSON value) to every client as a msg of
// topic wire.BroadcastTopic; broadcasts have a sequence of their own.
func (b *Bus) Broadcast(data []byte) (*Message, error) {
	if len(data) > b.cfg.MaxDataBytes {
		return nil, fmt.Errorf("%w: %d bytes, the cap is %d", ErrTooLarge, len(data), b.cfg.MaxDataBytes)
	}
	if b.local.Overloaded() {
		return nil, ErrOverloaded
	}
	b.bmu.Lock()
	defer b.bmu.Unlock()
	if b.sealed.Load() {
		return nil, ErrSealed
	}
	b.bseq++
	return b.broadcast(b.bseq, b.now().UnixNano(), data), nil
}

// broadcast encodes and delivers a broadcast; bmu is held.
func (b *Bus) broadcast(seq uint64, ts int64, data []byte) *Message {
	m := &Message{Seq: seq, TS: ts, Data: data}
	m.Frame = wire.EndFrame(wire.AppendMsg(wire.BeginFrame(make([]byte, 0, wire.MaxHeader+64+len(data))), wire.BroadcastTopic, seq, ts, data), wire.OpText)
	b.messages.Add(1)
	b.local.Broadcast(m)
	return m
}

// TopicInfo describes a topic, for the API.
type TopicInfo struct {
	Topic       string `json:"topic"`
	Subscribers int    `json:"subscribers"`
	LastSeq     uint64 `json:"last_seq"`
	Epoch       string `json:"epoch"`
	HistoryLen  int    `json:"history_len"`
	LastPublish string `json:"last_publish,omitempty"`
}

func (t *Topic) info() TopicInfo {
	t.trim()
	ti := TopicInfo{Topic: t.name, Subscribers: t.subs, LastSeq: t.seq, Epoch: t.epoch, HistoryLen: t.n}
	if t.lastPub != 0 {
		ti.LastPublish = time.Unix(0, t.lastPub).UTC().Format(time.RFC3339Nano)
	}
	return ti
}

// Topic describes one topic; ok is false when there is none.
func (b *Bus) Topic(name string) (TopicInfo, bool) {
	t, _ := b.lock(name, false)
	if t == nil {
		return TopicInfo{}, false
	}
	defer t.mu.Unlock()
	return t.info(), true
}

// Topics describes every topic, sorted by name.
func (b *Bus) Topics() []TopicInfo {
	b.mu.RLock()
	ts := make([]*Topic, 0, len(b.topics))
	for _, t := range b.topics {
		ts = append(ts, t)
	}
	b.mu.RUnlock()
	out := make([]TopicInfo, 0, len(ts))
	for _, t := range ts {
		t.mu.Lock()
		if !t.dead {
			out = append(out, t.info())
		}
		t.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// Sweep forgets topics with no subscribers whose history has expired at
// now: their memory is returned, and a later use starts a new epoch.
func (b *Bus) Sweep(now time.Time) int {
	cutoff := now.UnixNano() - int64(b.cfg.HistoryTTL)
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for name, t := range b.topics {
		t.mu.Lock()
		if t.subs == 0 && t.lastPub < cutoff {
			t.dead = true
			delete(b.topics, name)
			b.clearHistory(t)
			t.latest.Store(nil) // stale queue entries may still point at t
			n++
		}
		t.mu.Unlock()
	}
	return n
}
