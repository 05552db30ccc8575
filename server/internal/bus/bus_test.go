package bus

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"wspush/server/wire"
)

// recorder is a Local that records what it is handed.
type recorder struct {
	mu         sync.Mutex
	delivered  []*Message
	broadcasts []*Message
	overloaded bool
	started    Start          // the last subscription's start
	subs       map[string]int // subscriptions held, by subscriber and topic
}

// subscriber is a bus.Subscriber for tests.
type subscriber string

func (s subscriber) ID() string { return string(s) }

func (r *recorder) Subscribe(t *Topic, s Subscription, st Start) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subs == nil {
		r.subs = map[string]int{}
	}
	r.subs[s.Subscriber.ID()+"/"+t.Name()]++
	r.started = st
	return nil
}

func (r *recorder) Unsubscribe(t *Topic, s Subscription) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := s.Subscriber.ID() + "/" + t.Name()
	if r.subs[k] == 0 {
		return false
	}
	r.subs[k]--
	return true
}

// start subscribes a test subscriber to topic from r and returns the start
// the bus handed to Local.
func (r *recorder) start(t *testing.T, b *Bus, topic string, res Resume) Start {
	t.Helper()
	if err := b.Subscribe(Subscription{Subscriber: subscriber("s"), Topic: topic, Resume: res}); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started
}

func (r *recorder) Deliver(m *Message) {
	r.mu.Lock()
	r.delivered = append(r.delivered, m)
	r.mu.Unlock()
}

func (r *recorder) Broadcast(m *Message) {
	r.mu.Lock()
	r.broadcasts = append(r.broadcasts, m)
	r.mu.Unlock()
}

func (r *recorder) Overloaded() bool { return r.overloaded }

func newBus(t *testing.T, cfg Config) (*Bus, *recorder, *time.Time) {
	t.Helper()
	r := &recorder{}
	b := New(cfg, r)
	now := time.Unix(1_800_000_000, 0)
	b.now = func() time.Time { return now }
	return b, r, &now
}

func TestSeqIsContiguousPerTopicUnderConcurrency(t *testing.T) {
	b, r, _ := newBus(t, Config{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if _, err := b.Publish("t"+strconv.Itoa(g%2), []byte(strconv.Itoa(i))); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	next := map[string]uint64{}
	for _, m := range r.delivered {
		name := m.Topic.Name()
		if m.Seq != next[name]+1 {
			t.Fatalf("%s: seq %d delivered after %d", name, m.Seq, next[name])
		}
		next[name] = m.Seq
		if !bytes.HasSuffix(m.Frame, []byte(`"data":`+string(m.Data)+`}`)) {
			t.Fatalf("frame %q", m.Frame)
		}
	}
	if next["t0"] != 800 || next["t1"] != 800 {
		t.Fatalf("last seqs %v", next)
	}
}

func TestResumeFromHistory(t *testing.T) {
	b, rec, now := newBus(t, Config{HistorySize: 5, HistoryTTL: time.Minute})
	for i := 1; i <= 12; i++ {
		_, _ = b.Publish("h", []byte(strconv.Itoa(i)))
	}
	var epoch string
	start := func(r Resume) Start {
		s := rec.start(t, b, "h", r)
		epoch = s.Epoch
		return s
	}
	s := start(Resume{})
	if s.Last != 12 || s.Gone || s.Replay != nil {
		t.Fatalf("live start %+v", s)
	}
	cases := []struct {
		since  uint64
		epoch  string
		gone   bool
		replay []uint64
	}{
		{12, epoch, false, nil},
		{9, epoch, false, []uint64{10, 11, 12}},
		{7, epoch, false, []uint64{8, 9, 10, 11, 12}},
		{6, epoch, true, nil},  // 7 is no longer kept
		{13, epoch, true, nil}, // from the future
		{10, "other", true, nil},
	}
	for _, c := range cases {
		s := start(Resume{Since: c.since, Epoch: c.epoch, HasSince: true})
		var got []uint64
		for _, m := range s.Replay {
			got = append(got, m.Seq)
		}
		if s.Gone != c.gone || len(got) != len(c.replay) || (len(got) > 0 && got[0] != c.replay[0]) {
			t.Errorf("since %d epoch %q: gone %v replay %v; want %v %v", c.since, c.epoch, s.Gone, got, c.gone, c.replay)
		}
	}
	// Past the TTL the history no longer serves a resume.
	*now = now.Add(2 * time.Minute)
	if s := start(Resume{Since: 11, Epoch: epoch, HasSince: true}); !s.Gone {
		t.Fatalf("resume past the TTL: %+v", s)
	}
}

func TestSweepForgetsIdleTopicsAndANewEpochFollows(t *testing.T) {
	b, _, now := newBus(t, Config{HistoryTTL: time.Minute})
	_, _ = b.Publish("idle", []byte("1"))
	held := Subscription{Subscriber: subscriber("s"), Topic: "kept"}
	_ = b.Subscribe(held)
	old, _ := b.Topic("idle")
	if n := b.Sweep(now.Add(30 * time.Second)); n != 0 {
		t.Fatalf("swept %d topics within the TTL", n)
	}
	if n := b.Sweep(now.Add(2 * time.Minute)); n != 1 {
		t.Fatalf("swept %d topics, want the idle one", n)
	}
	if _, ok := b.Topic("kept"); !ok {
		t.Fatal("a topic with a subscriber was swept")
	}
	m, _ := b.Publish("idle", []byte("2"))
	if m.Seq != 1 || m.Topic.Epoch() == old.Epoch {
		t.Fatalf("after the sweep: seq %d epoch %s (was %s)", m.Seq, m.Topic.Epoch(), old.Epoch)
	}
	if err := b.Unsubscribe(held); err != nil {
		t.Fatal(err)
	}
	if ti, _ := b.Topic("kept"); ti.Subscribers != 0 {
		t.Fatalf("subscribers %d after unsubscribe", ti.Subscribers)
	}
}

func TestPublishLimits(t *testing.T) {
	b, r, _ := newBus(t, Config{MaxTopics: 2, MaxDataBytes: 10})
	if _, err := b.Publish("bad topic", []byte("1")); err == nil {
		t.Error("invalid topic accepted")
	}
	if _, err := b.Publish("a", []byte(`"01234567890"`)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
	_, _ = b.Publish("a", []byte("1"))
	_, _ = b.Publish("b", []byte("1"))
	if _, err := b.Publish("c", []byte("1")); !errors.Is(err, ErrTooManyTopic) {
		t.Errorf("third topic: %v", err)
	}
	r.overloaded = true
	if _, err := b.Publish("a", []byte("2")); !errors.Is(err, ErrOverloaded) {
		t.Errorf("overloaded: %v", err)
	}
	if _, err := b.Broadcast([]byte("2")); !errors.Is(err, ErrOverloaded) {
		t.Errorf("overloaded broadcast: %v", err)
	}
	if ti, _ := b.Topic("a"); ti.LastSeq != 1 {
		t.Fatalf("refused publishes changed the topic: %+v", ti)
	}
}

func TestBroadcastsAreSequencedAndCompressedOnce(t *testing.T) {
	b, r, _ := newBus(t, Config{})
	big := []byte(`"` + strings.Repeat("compress me ", 100) + `"`)
	m1, _ := b.Broadcast([]byte("1"))
	m2, _ := b.Broadcast(big)
	if m1.Seq != 1 || m2.Seq != 2 || len(r.broadcasts) != 2 || m1.Topic != nil {
		t.Fatalf("broadcasts %+v %+v", m1, m2)
	}
	if f := m1.FrameFor(true); &f[0] != &m1.Frame[0] {
		t.Fatal("a tiny message was compressed")
	}
	z := m2.FrameFor(true)
	if &z[0] != &m2.FrameFor(true)[0] || len(z) >= len(m2.Frame) || z[0] != 0xC1 {
		t.Fatalf("compressed frame: first byte %#x, %d bytes vs %d", z[0], len(z), len(m2.Frame))
	}
	payload := append(append([]byte(nil), wire.Payload(z)...), 0, 0, 0xff, 0xff)
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(payload)))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	if !bytes.Equal(out, wire.Payload(m2.Frame)) {
		t.Fatalf("inflated to %q", out)
	}
}

// An Unsubscribe that matches no subscription (another subscriber's, a
// repeat, a topic never seen) is refused and leaves the count alone.
func TestUnsubscribeWithoutASubscriptionChangesNothing(t *testing.T) {
	b, _, _ := newBus(t, Config{})
	s := Subscription{Subscriber: subscriber("s"), Topic: "t"}
	if err := b.Subscribe(s); err != nil {
		t.Fatal(err)
	}
	subscribers := func() int { ti, _ := b.Topic("t"); return ti.Subscribers }
	if err := b.Unsubscribe(Subscription{Subscriber: subscriber("other"), Topic: "t"}); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("another subscriber's unsubscribe: %v", err)
	}
	if n := subscribers(); n != 1 {
		t.Fatalf("%d subscribers after another's unsubscribe, want 1", n)
	}
	if err := b.Unsubscribe(s); err != nil {
		t.Fatal(err)
	}
	if err := b.Unsubscribe(s); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("a repeated unsubscribe: %v", err)
	}
	if n := subscribers(); n != 0 {
		t.Fatalf("%d subscribers after a repeated unsubscribe, want 0", n)
	}
	if err := b.Unsubscribe(Subscription{Subscriber: subscriber("s"), Topic: "never"}); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("unsubscribe from a topic never seen: %v", err)
	}
}

// A message's frame is allocated once at its final size: history holds one
// copy of each value, not a regrown buffer a third larger.
func TestMessageFrameIsNotRegrown(t *testing.T) {
	b, _, _ := newBus(t, Config{})
	data := append(append([]byte{'"'}, bytes.Repeat([]byte{'x'}, DefaultMaxDataBytes-2)...), '"')
	for _, name := range []string{"a", "a.fairly.long/topic-name:with@everything_allowed"} {
		for range 3 { // seq and ts grow; the frame must still fit
			m, err := b.Publish(name, data)
			if err != nil {
				t.Fatal(err)
			}
			if spare := cap(m.Frame) - len(m.Frame); spare < 0 || spare > 64 {
				t.Fatalf("topic %q: frame len %d cap %d: allocated %d bytes more than it needs", name, len(m.Frame), cap(m.Frame), spare)
			}
		}
	}
}
