package bus

import (
	"math"
	"unsafe"
)

// History memory is bounded twice: per topic by HistorySize messages, and
// bus-wide by MaxHistoryBytes. For the bus-wide bound every history entry
// is also queued, in publish order, in the bus's queue (Bus.hq, guarded by
// Bus.hmu); when a publish takes history past the cap, entries leave from
// the head of that queue, the oldest first, whatever their topic.
//
// An entry of topic t is live while its bus-wide sequence number (gseq) is
// at least t.histFrom; everything older in t's ring is dead. Evicting the
// oldest entry of another topic u needs only hmu: it raises u.histFrom (an
// atomic written under hmu) and queues u for a trim. The publisher trims u's
// ring (returning the memory) after it has released its own topic's lock,
// so no goroutine ever holds two topic locks; anyone else who takes u's
// lock first trims it too (since, info, remember). Queue entries whose
// topic has already dropped them (the ring was full, the topic was swept or
// its history restarted) are stale: skipped when they reach the head, and
// compacted away once they outnumber the live ones, so the queue stays
// within about twice the live entries and each publish costs O(1)
// amortized.

// DefaultMaxHistoryBytes caps the history of all topics together.
const DefaultMaxHistoryBytes = 512 << 20

// entryOverhead is what a history entry holds besides its frames: the
// Message, its queue entry and its ring slot.
const entryOverhead = int64(unsafe.Sizeof(Message{}) + unsafe.Sizeof(entry{}) + unsafe.Sizeof((*Message)(nil)))

// entry is one history message in the bus-wide publish-order queue.
type entry struct {
	t     *Topic
	gseq  uint64
	bytes int64
}

// dead is the histFrom of a topic whose history was dropped whole.
const dead = math.MaxUint64

// historyBytes is what m holds while it is in a history: its frames (Data
// is a slice of Frame) and entryOverhead.
func historyBytes(m *Message) int64 {
	n := int64(cap(m.Frame)+cap(m.NoticeFrame)+cap(m.Notice)) + entryOverhead
	if len(m.Data) > 0 && len(m.Frame) > 0 && &m.Data[len(m.Data)-1] != &m.Frame[len(m.Frame)-2] {
		n += int64(cap(m.Data)) // not a slice of Frame
	}
	return n
}

// HistoryBytes returns the bytes held by the history of all topics
// (frames and per-entry overhead; see docs/security.md).
func (b *Bus) HistoryBytes() int64 { return b.histBytes.Load() }

// HistoryEvictions returns how many history entries left early because
// the history of all topics was at MaxHistoryBytes.
func (b *Bus) HistoryEvictions() uint64 { return b.evictions.Load() }

// remember adds m to t's history and to the bus-wide queue, then evicts
// the oldest entries bus-wide while history is over the cap. t.mu is held.
func (b *Bus) remember(t *Topic, m *Message) {
	m.hbytes = historyBytes(m)
	b.hmu.Lock()
	defer b.hmu.Unlock()
	t.trim()
	if t.n == b.cfg.HistorySize {
		old := t.popOldest()
		b.dropLocked(old.hbytes)
		t.histFrom.Store(old.gseq + 1)
	}
	b.gseq++
	m.gseq = b.gseq
	t.pushNewest(m, b.cfg.HistorySize)
	if t.n == 1 {
		t.histFrom.Store(m.gseq) // the history was empty: older entries are dead
	}
	b.hq = append(b.hq, entry{t: t, gseq: m.gseq, bytes: m.hbytes})
	b.live++
	b.histBytes.Add(m.hbytes)
	for b.histBytes.Load() > b.cfg.MaxHistoryBytes && b.live > 0 {
		e := b.hq[b.hqHead]
		b.hq[b.hqHead] = entry{}
		b.hqHead++
		if e.gseq < e.t.histFrom.Load() {
			continue // stale: its topic dropped it already
		}
		b.dropLocked(e.bytes)
		b.evictions.Add(1)
		e.t.histFrom.Store(e.gseq + 1)
		if e.t == t {
			t.trim()
		} else if !e.t.trimQueued {
			e.t.trimQueued = true
			b.trims = append(b.trims, e.t)
			b.ntrims.Store(int32(len(b.trims)))
		}
	}
	if garbage := len(b.hq) - b.live; garbage > b.live+1024 {
		b.compactLocked()
	}
}

// dropLocked uncounts a live entry of bytes; hmu is held.
func (b *Bus) dropLocked(bytes int64) {
	b.histBytes.Add(-bytes)
	b.live--
}

// compactLocked drops the popped and stale entries from the queue, and
// shrinks it when it is mostly empty; hmu is held.
func (b *Bus) compactLocked() {
	q := b.hq[:0]
	for _, e := range b.hq[b.hqHead:] {
		if e.gseq >= e.t.histFrom.Load() {
			q = append(q, e)
		}
	}
	clear(b.hq[len(q):])
	if cap(q) > 4*len(q)+4096 {
		q = append(make([]entry, 0, 2*len(q)+1024), q...)
	}
	b.hq, b.hqHead = q, 0
}

// clearHistory drops t's whole history (its lock is held): the topic was
// swept, or its history restarts in a new epoch.
func (b *Bus) clearHistory(t *Topic) {
	b.hmu.Lock()
	for t.n > 0 {
		if m := t.popOldest(); m.gseq >= t.histFrom.Load() {
			b.dropLocked(m.hbytes)
		}
	}
	t.histFrom.Store(dead)
	b.hmu.Unlock()
	t.hist, t.head = nil, 0
}

// trimQueuedTopics trims the rings of topics whose entries were evicted by
// other topics' publishes. The caller holds no topic lock.
func (b *Bus) trimQueuedTopics() {
	for b.ntrims.Load() > 0 {
		b.hmu.Lock()
		var t *Topic
		if n := len(b.trims); n > 0 {
			t = b.trims[n-1]
			b.trims[n-1] = nil
			b.trims = b.trims[:n-1]
			b.ntrims.Store(int32(n - 1))
			t.trimQueued = false
		}
		b.hmu.Unlock()
		if t == nil {
			return
		}
		t.mu.Lock()
		t.trim()
		t.mu.Unlock()
	}
}

// trim drops the dead entries at the head of t's ring, and the ring itself
// when nothing is left. t.mu is held.
func (t *Topic) trim() {
	from := t.histFrom.Load()
	trimmed := false
	for t.n > 0 && t.hist[t.head].gseq < from {
		t.popOldest()
		trimmed = true
	}
	if trimmed && t.n == 0 {
		t.hist, t.head = nil, 0
	}
}

// pushNewest appends m to t's ring, growing it up to size; the ring must
// not be full. t.mu is held.
func (t *Topic) pushNewest(m *Message, size int) {
	if t.n == len(t.hist) {
		h := make([]*Message, min(max(4, 2*len(t.hist)), size))
		for i := 0; i < t.n; i++ {
			h[i] = t.hist[(t.head+i)%len(t.hist)]
		}
		t.hist, t.head = h, 0
	}
	t.hist[(t.head+t.n)%len(t.hist)] = m
	t.n++
}

// popOldest removes and returns the oldest message of t's ring, which must
// not be empty. t.mu is held.
func (t *Topic) popOldest() *Message {
	m := t.hist[t.head]
	t.hist[t.head] = nil
	t.head = (t.head + 1) % len(t.hist)
	t.n--
	return m
}
