package bus

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"wspush/server/wire"
)

// This file is the bus's side of a restart that keeps topic state
// (-state-dir; the snapshot package writes it to a file and reads it back).
//
// Saving: Export seals the bus (from then on every publish is refused with
// ErrSealed) and hands its state to an Exporter. A publish checks the seal
// under its topic's lock and Export copies each topic under that lock after
// sealing, so a publish that was acknowledged is in the export, and one
// that is not in it was refused.
//
// Restoring: a Restorer builds a new bus from the same calls an Exporter
// gets, and hands the bus out only once all of them were valid and complete.
// State can never be loaded into a bus that is already serving, and a
// restore that fails part way leaves nothing behind.

// ErrSealed: the bus was exported for a restart and takes no more
// publishes. It is an ErrOverloaded (retry later: the next process will
// take them).
var ErrSealed error = sealedError{}

type sealedError struct{}

func (sealedError) Error() string        { return "bus: shutting down, retry later" }
func (sealedError) Is(target error) bool { return target == ErrOverloaded }

// MaxEpochBytes bounds a restored topic epoch (a resume's epoch is at most
// this long too).
const MaxEpochBytes = 64

// Summary opens an export: what follows it.
type Summary struct {
	BroadcastSeq uint64 // the last broadcast's seq
	Topics       int    // Topic calls that follow
	Entries      int    // Entry calls after those
}

// TopicState is one topic's saved state.
type TopicState struct {
	Name    string
	Epoch   string
	Seq     uint64 // the last seq
	LastPub int64  // Unix ns of the last publish (0: none)
	// History is how many history entries of the topic follow (its last
	// History seqs, Seq-History+1 … Seq, oldest first).
	History int
	// Latest is the newest value (seq Seq), for latest-mode subscribers;
	// nil when nothing was published.
	Latest *Entry
}

// Entry is one saved message.
type Entry struct {
	TS   int64 // Unix ns
	Data []byte
}

// Exporter receives a bus's state: Begin, then every topic (numbered from
// 0 in call order), then every history entry of every topic in the order
// they were published (bus-wide), each naming its topic's number.
type Exporter interface {
	Begin(Summary) error
	Topic(TopicState) error
	Entry(topic int, e Entry) error
}

// savedTopic is a topic's state copied under its lock, for Export.
type savedTopic struct {
	st   TopicState
	hist []*Message // the history entries to export, oldest first
	next int        // the next of hist to export
}

// Export seals the bus and hands its state to w: every topic with its
// epoch, last seq, newest value and the history still within HistoryTTL.
// Topics go newest publish first, so that a restore with a lower MaxTopics
// keeps the most recent ones. It returns w's first error.
func (b *Bus) Export(w Exporter) error {
	b.sealed.Store(true)
	b.bmu.Lock()
	bseq := b.bseq
	b.bmu.Unlock()
	b.mu.RLock()
	ts := make([]*Topic, 0, len(b.topics))
	for _, t := range b.topics {
		ts = append(ts, t)
	}
	b.mu.RUnlock()

	cutoff := b.now().UnixNano() - int64(b.cfg.HistoryTTL)
	saved := make([]savedTopic, 0, len(ts))
	entries := 0
	for _, t := range ts {
		t.mu.Lock()
		if !t.dead {
			saved = append(saved, t.save(cutoff))
			entries += len(saved[len(saved)-1].hist)
		}
		t.mu.Unlock()
	}
	slices.SortFunc(saved, func(a, b savedTopic) int {
		return cmp.Or(cmp.Compare(b.st.LastPub, a.st.LastPub), cmp.Compare(a.st.Name, b.st.Name))
	})
	if err := w.Begin(Summary{BroadcastSeq: bseq, Topics: len(saved), Entries: entries}); err != nil {
		return err
	}
	index := make(map[*Topic]int, len(saved))
	for i := range saved {
		if len(saved[i].hist) > 0 {
			index[saved[i].hist[0].Topic] = i
		}
		if err := w.Topic(saved[i].st); err != nil {
			return err
		}
	}
	return b.exportHistory(w, saved, index, entries)
}

// exportHistory hands w the saved entries in bus-wide publish order: the
// order of the history queue, in which every live entry is.
func (b *Bus) exportHistory(w Exporter, saved []savedTopic, index map[*Topic]int, entries int) error {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	n := 0
	for _, e := range b.hq[b.hqHead:] {
		i, ok := index[e.t]
		if !ok {
			continue
		}
		s := &saved[i]
		if s.next == len(s.hist) || s.hist[s.next].gseq != e.gseq {
			continue // stale, or not exported (expired)
		}
		m := s.hist[s.next]
		s.next++
		n++
		if err := w.Entry(i, Entry{TS: m.TS, Data: m.Data}); err != nil {
			return err
		}
	}
	if n != entries {
		return fmt.Errorf("bus: export: %d of %d history entries in the history queue", n, entries)
	}
	return nil
}

// save copies t's state, with the newest history entries published at or
// after cutoff; t.mu is held.
func (t *Topic) save(cutoff int64) savedTopic {
	t.trim()
	k := 0 // the newest k entries are exported
	for k < t.n && t.hist[(t.head+t.n-1-k)%len(t.hist)].TS >= cutoff {
		k++
	}
	hist := make([]*Message, k)
	for i := range hist {
		hist[i] = t.hist[(t.head+t.n-k+i)%len(t.hist)]
	}
	st := TopicState{Name: t.name, Epoch: t.epoch, Seq: t.seq, LastPub: t.lastPub, History: k}
	if m := t.latest.Load(); m != nil {
		st.Latest = &Entry{TS: m.TS, Data: m.Data}
	}
	return savedTopic{st: st, hist: hist}
}

// ErrBadState: a Restorer was given state that cannot be (a duplicate
// topic, an entry beyond what was announced, a value over the cap, …).
var ErrBadState = errors.New("bus: bad saved state")

// Restorer builds a bus from saved state: Begin, Topic and Entry as an
// Exporter gets them, then Bus. It drops what the bus would have dropped
// by now: history entries published before now minus HistoryTTL, entries
// over HistorySize or MaxHistoryBytes (the oldest first, as the bus does),
// and topics over MaxTopics (the first ones given are kept; Export gives
// the most recently published first). Not safe for concurrent use.
type Restorer struct {
	b      *Bus
	cutoff int64
	begun  bool
	done   bool
	sum    Summary
	topics []restoring // by the number given in Topic
	names  map[string]bool
	kept   int // topics in b
	given  int // entries given
	loaded int // entries loaded (not dropped)
}

// restoring is a topic being restored.
type restoring struct {
	t      *Topic // nil: dropped (over MaxTopics)
	next   uint64 // the seq of its next entry
	left   int    // entries still to come
	latest *Entry
}

// NewRestorer starts restoring a bus delivering to local, as of now (Unix
// ns): history older than now minus cfg's HistoryTTL is dropped.
func NewRestorer(cfg Config, local Local, now int64) *Restorer {
	b := New(cfg, local)
	return &Restorer{b: b, cutoff: now - int64(b.cfg.HistoryTTL), names: map[string]bool{}}
}

func badState(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadState, fmt.Sprintf(format, args...))
}

// Begin takes the summary that opens the state.
func (r *Restorer) Begin(s Summary) error {
	if r.begun || s.Topics < 0 || s.Entries < 0 {
		return badState("summary given twice or negative")
	}
	r.begun, r.sum = true, s
	r.b.bseq = s.BroadcastSeq
	r.topics = make([]restoring, 0, min(s.Topics, r.b.cfg.MaxTopics))
	return nil
}

// Topic takes the next topic's state.
func (r *Restorer) Topic(st TopicState) error {
	switch {
	case !r.begun || r.done || len(r.topics) == r.sum.Topics:
		return badState("topic %q beyond the %d announced", st.Name, r.sum.Topics)
	case wire.ValidTopic(st.Name) != nil:
		return badState("invalid topic name %q", st.Name)
	case r.names[st.Name]:
		return badState("topic %q given twice", st.Name)
	case st.Epoch == "" || len(st.Epoch) > MaxEpochBytes:
		return badState("topic %q: epoch of %d bytes", st.Name, len(st.Epoch))
	case st.History < 0 || uint64(st.History) > st.Seq:
		return badState("topic %q: %d history entries for last seq %d", st.Name, st.History, st.Seq)
	case st.Latest == nil && st.Seq > 0, st.Latest != nil && st.Seq == 0:
		return badState("topic %q: last seq %d and no newest value, or the reverse", st.Name, st.Seq)
	case st.Latest != nil && len(st.Latest.Data) > r.b.cfg.MaxDataBytes:
		return badState("topic %q: a value of %d bytes, the cap is %d", st.Name, len(st.Latest.Data), r.b.cfg.MaxDataBytes)
	}
	r.names[st.Name] = true
	rt := restoring{next: st.Seq - uint64(st.History) + 1, left: st.History}
	if r.kept < r.b.cfg.MaxTopics {
		t := &Topic{name: st.Name, epoch: st.Epoch, seq: st.Seq, lastPub: st.LastPub}
		t.histFrom.Store(dead)
		r.b.topics[st.Name] = t
		r.kept++
		rt.t = t
		if st.Latest != nil {
			rt.latest = &Entry{TS: st.Latest.TS, Data: slices.Clone(st.Latest.Data)}
		}
	}
	r.topics = append(r.topics, rt)
	return nil
}

// Entry takes the next history entry, of the topic numbered topic; e.Data
// is copied.
func (r *Restorer) Entry(topic int, e Entry) error {
	if r.done || len(r.topics) != r.sum.Topics || topic < 0 || topic >= len(r.topics) || r.topics[topic].left == 0 {
		return badState("history entry of topic #%d not announced", topic)
	}
	rt := &r.topics[topic]
	t := rt.t
	if len(e.Data) > r.b.cfg.MaxDataBytes {
		return badState("a value of %d bytes, the cap is %d", len(e.Data), r.b.cfg.MaxDataBytes)
	}
	seq := rt.next
	r.given++
	rt.next++
	rt.left--
	if t == nil {
		return nil
	}
	t.mu.Lock()
	if e.TS < r.cutoff {
		// Expired: so is everything before it (a topic's history is a run
		// of consecutive seqs).
		r.b.clearHistory(t)
		t.mu.Unlock()
		return nil
	}
	r.b.remember(t, t.message(seq, e.TS, e.Data, nil))
	t.mu.Unlock()
	r.b.trimQueuedTopics()
	r.loaded++
	return nil
}

// Bus checks that everything announced was given and returns the bus, once;
// its topics continue their epochs and seqs. It has not started (see Run).
func (r *Restorer) Bus() (*Bus, error) {
	if !r.begun || r.done || len(r.topics) != r.sum.Topics || r.given != r.sum.Entries {
		return nil, badState("%d of %d topics and %d of %d history entries given", len(r.topics), r.sum.Topics, r.given, r.sum.Entries)
	}
	for i := range r.topics {
		rt := &r.topics[i]
		if rt.left != 0 {
			return nil, badState("%d history entries of topic #%d missing", rt.left, i)
		}
		t := rt.t
		if t == nil || rt.latest == nil {
			continue
		}
		t.mu.Lock()
		t.trim()
		if t.n > 0 && t.hist[(t.head+t.n-1)%len(t.hist)].Seq == t.seq {
			t.latest.Store(t.hist[(t.head+t.n-1)%len(t.hist)])
		} else {
			t.latest.Store(t.message(t.seq, rt.latest.TS, rt.latest.Data, nil))
		}
		t.mu.Unlock()
	}
	r.done = true
	return r.b, nil
}

// Loaded returns the topics and history entries the restored bus holds
// (dropped ones not counted; entries evicted later still counted).
func (r *Restorer) Loaded() (topics, entries int) { return r.kept, r.loaded }
