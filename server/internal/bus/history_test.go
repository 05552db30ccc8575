package bus

import (
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// liveBytes sums what the topics' rings really hold, after the queued
// trims, to check HistoryBytes against.
func liveBytes(b *Bus) (bytes int64, entries int) {
	b.trimQueuedTopics()
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, t := range b.topics {
		t.mu.Lock()
		t.trim()
		for i := 0; i < t.n; i++ {
			bytes += t.hist[(t.head+i)%len(t.hist)].hbytes
		}
		entries += t.n
		t.mu.Unlock()
	}
	return bytes, entries
}

// entrySize is what one message of data on topic counts for in history.
func entrySize(t *testing.T, topic, data string) int64 {
	t.Helper()
	b, _, _ := newBus(t, Config{})
	if _, err := b.Publish(topic, []byte(data)); err != nil {
		t.Fatal(err)
	}
	return b.HistoryBytes()
}

func TestHistoryBytesStayUnderTheCapAcrossManyTopics(t *testing.T) {
	const maxBytes = 256 << 10
	b, _, _ := newBus(t, Config{MaxHistoryBytes: maxBytes, HistorySize: 50})
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20_000; i++ {
		data := `"` + strings.Repeat("x", rng.Intn(4000)) + `"`
		if _, err := b.Publish("t."+strconv.Itoa(rng.Intn(2000)), []byte(data)); err != nil {
			t.Fatal(err)
		}
		if got := b.HistoryBytes(); got > maxBytes {
			t.Fatalf("publish %d: history holds %d bytes, over the cap of %d", i, got, maxBytes)
		}
	}
	got, entries := liveBytes(b)
	if got != b.HistoryBytes() || got < maxBytes/2 {
		t.Fatalf("rings hold %d bytes in %d entries, HistoryBytes says %d (cap %d)", got, entries, b.HistoryBytes(), maxBytes)
	}
	if len(b.hq)-b.hqHead > 2*entries+1024 {
		t.Fatalf("the history queue keeps %d entries for %d live ones", len(b.hq)-b.hqHead, entries)
	}
	if b.HistoryEvictions() == 0 {
		t.Fatal("no evictions counted")
	}
}

func TestHistoryCapHoldsUnderConcurrentPublishesAndSweeps(t *testing.T) {
	const maxBytes = 64 << 10
	b, _, _ := newBus(t, Config{MaxHistoryBytes: maxBytes, HistorySize: 20, HistoryTTL: time.Nanosecond})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				_, _ = b.Publish("c."+strconv.Itoa((g*7+i)%300), []byte(`"`+strings.Repeat("y", i%1500)+`"`))
				if i%500 == 0 {
					b.Sweep(time.Unix(1_900_000_000, 0))
				}
			}
		}(g)
	}
	wg.Wait()
	got, _ := liveBytes(b)
	if got != b.HistoryBytes() || got > maxBytes {
		t.Fatalf("rings hold %d bytes, HistoryBytes says %d, cap %d", got, b.HistoryBytes(), maxBytes)
	}
	b.Sweep(time.Unix(1_900_000_000, 0))
	if got, _ := liveBytes(b); got != 0 || b.HistoryBytes() != 0 {
		t.Fatalf("after sweeping every topic: rings %d bytes, HistoryBytes %d", got, b.HistoryBytes())
	}
}

// resume subscribes to topic from since in epoch and returns the start.
func resume(t *testing.T, b *Bus, topic, epoch string, since uint64) Start {
	t.Helper()
	return b.local.(*recorder).start(t, b, topic, Resume{Since: since, Epoch: epoch, HasSince: true})
}

func TestHistoryEvictsTheOldestFirstAcrossTopics(t *testing.T) {
	one := entrySize(t, "a", `"0123456789"`)
	// Room for exactly 6 entries of this size.
	b, _, _ := newBus(t, Config{MaxHistoryBytes: 6 * one})
	// a1 b1 a2 b2 c1 a3 | a4 c2: the two newest push out a1 and b1, the two oldest.
	for _, topic := range []string{"a", "b", "a", "b", "c", "a", "a", "c"} {
		if _, err := b.Publish(topic, []byte(`"0123456789"`)); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.HistoryBytes(); got != 6*one {
		t.Fatalf("history holds %d bytes, want %d", got, 6*one)
	}
	want := map[string]int{"a": 3, "b": 1, "c": 2} // a2 a3 a4, b2, c1 c2
	for topic, n := range want {
		ti, _ := b.Topic(topic)
		if ti.HistoryLen != n {
			t.Errorf("topic %s keeps %d messages, want %d", topic, ti.HistoryLen, n)
		}
	}
	epochA := b.topics["a"].Epoch()
	// Resume into the evicted range: history_gone, never a silent gap.
	if s := resume(t, b, "a", epochA, 0); !s.Gone || s.Replay != nil {
		t.Fatalf("resume of a from 0 (a1 evicted): %+v", s)
	}
	// Resume just after it: the exact replay.
	s := resume(t, b, "a", epochA, 1)
	if s.Gone || len(s.Replay) != 3 || s.Replay[0].Seq != 2 || s.Replay[2].Seq != 4 {
		t.Fatalf("resume of a from 1: gone %v, %d messages", s.Gone, len(s.Replay))
	}
	if s := resume(t, b, "b", b.topics["b"].Epoch(), 0); !s.Gone {
		t.Fatalf("resume of b from 0 (b1 evicted): %+v", s)
	}
	if s := resume(t, b, "b", b.topics["b"].Epoch(), 1); s.Gone || len(s.Replay) != 1 || s.Replay[0].Seq != 2 {
		t.Fatalf("resume of b from 1: %+v", s)
	}
	// One big message takes everything older; the latest values stay.
	big := `"` + strings.Repeat("z", int(5*one)) + `"`
	if _, err := b.Publish("c", []byte(big)); err != nil {
		t.Fatal(err)
	}
	if s := resume(t, b, "a", epochA, 3); !s.Gone {
		t.Fatalf("resume of a after the big message: %+v", s)
	}
	if m := b.topics["a"].Latest(); m == nil || m.Seq != 4 || string(m.Data) != `"0123456789"` {
		t.Fatalf("a's latest value after its history was evicted: %+v", m)
	}
	if m := b.topics["c"].Latest(); m == nil || string(m.Data) != big {
		t.Fatal("c's latest value is not the big message")
	}
	got, _ := liveBytes(b)
	if got != b.HistoryBytes() || got > 6*one {
		t.Fatalf("rings hold %d bytes, HistoryBytes %d, cap %d", got, b.HistoryBytes(), 6*one)
	}
}

func TestAMessageOverTheWholeCapIsDeliveredButNotKept(t *testing.T) {
	b, r, _ := newBus(t, Config{MaxHistoryBytes: 1024})
	m, err := b.Publish("huge", []byte(`"`+strings.Repeat("h", 2000)+`"`))
	if err != nil || len(r.delivered) != 1 {
		t.Fatalf("publish: %v, %d delivered", err, len(r.delivered))
	}
	if b.HistoryBytes() != 0 {
		t.Fatalf("history holds %d bytes", b.HistoryBytes())
	}
	if s := resume(t, b, "huge", m.Topic.Epoch(), 0); !s.Gone {
		t.Fatalf("resume from 0: %+v", s)
	}
	if s := resume(t, b, "huge", m.Topic.Epoch(), 1); s.Gone || s.Replay != nil {
		t.Fatalf("resume from the last seq: %+v", s)
	}
}

func TestApplyNewEpochReleasesHistoryBytes(t *testing.T) {
	b, _, _ := newBus(t, Config{})
	for seq := uint64(1); seq <= 5; seq++ {
		if err := b.Apply("n", "e1", seq, 1, []byte(`"v"`)); err != nil {
			t.Fatal(err)
		}
	}
	before := b.HistoryBytes()
	if err := b.Apply("n", "e2", 1, 2, []byte(`"w"`)); err != nil {
		t.Fatal(err)
	}
	got, entries := liveBytes(b)
	if entries != 1 || got != b.HistoryBytes() || got >= before {
		t.Fatalf("after a new epoch: %d entries, %d bytes (HistoryBytes %d, was %d)", entries, got, b.HistoryBytes(), before)
	}
}
