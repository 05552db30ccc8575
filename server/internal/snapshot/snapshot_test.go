package snapshot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"wspush/server/internal/bus"
)

// local is the bus's local side: it keeps the Start of the last
// subscription, so a test can look at a resume's replay.
type local struct {
	mu    sync.Mutex
	start bus.Start
	topic *bus.Topic
}

func (l *local) Deliver(*bus.Message)   {}
func (l *local) Broadcast(*bus.Message) {}
func (l *local) Overloaded() bool       { return false }
func (l *local) Unsubscribe(*bus.Topic, bus.Subscription) bool {
	return true
}

func (l *local) Subscribe(t *bus.Topic, _ bus.Subscription, st bus.Start) error {
	l.mu.Lock()
	l.start, l.topic = st, t
	l.mu.Unlock()
	return nil
}

type sub string

func (s sub) ID() string { return string(s) }

// resume returns what a resume of topic from since in epoch gets.
func resume(t *testing.T, b *bus.Bus, l *local, topic, epoch string, since uint64) bus.Start {
	t.Helper()
	if err := b.Subscribe(bus.Subscription{Subscriber: sub("s"), Topic: topic,
		Resume: bus.Resume{Since: since, Epoch: epoch, HasSince: true}}); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start
}

// filled returns a bus with topics × msgs messages (the value of message
// i of topic j is {"t":j,"i":i}) and a broadcast.
func filled(t *testing.T, cfg bus.Config, topics, msgs int) (*bus.Bus, *local) {
	t.Helper()
	l := &local{}
	b := bus.New(cfg, l)
	for i := 1; i <= msgs; i++ {
		for j := range topics {
			if _, err := b.Publish(fmt.Sprintf("t%d", j), []byte(fmt.Sprintf(`{"t":%d,"i":%d}`, j, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Subscribe(bus.Subscription{Subscriber: sub("s"), Topic: "empty"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Broadcast([]byte(`"hello"`)); err != nil {
		t.Fatal(err)
	}
	return b, l
}

// saved writes b's state to a new directory and returns the file's bytes.
func saved(t *testing.T, b *bus.Bus) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	if _, err := Save(dir, b); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return dir, data
}

// loadBytes loads data as a state file with cfg.
func loadBytes(t *testing.T, data []byte, cfg bus.Config) (*bus.Bus, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _, err := Load(dir, cfg, &local{}, time.Now())
	if (b == nil) == (err == nil) {
		t.Fatalf("Load returned bus %v and error %v", b != nil, err)
	}
	return b, err
}

// withCRC appends the checksum to body.
func withCRC(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
}

func TestRoundTrip(t *testing.T) {
	a, la := filled(t, bus.Config{HistorySize: 10}, 5, 12)
	dir, _ := saved(t, a)
	if _, err := a.Publish("t0", []byte("1")); !errors.Is(err, bus.ErrSealed) || !errors.Is(err, bus.ErrOverloaded) {
		t.Fatalf("publish after the save: %v, want ErrSealed (an ErrOverloaded)", err)
	}
	if _, err := a.Broadcast([]byte("1")); !errors.Is(err, bus.ErrSealed) {
		t.Fatalf("broadcast after the save: %v, want ErrSealed", err)
	}
	lb := &local{}
	b, st, err := Load(dir, bus.Config{HistorySize: 10}, lb, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Topics != 6 || st.Messages != 50 || st.Kept != 50 {
		t.Fatalf("stats %+v, want 6 topics, 50 messages kept", st)
	}
	ta, tb := a.Topics(), b.Topics()
	for i := range ta {
		ta[i].Subscribers = 0 // subscriptions end with the process
	}
	if fmt.Sprint(ta) != fmt.Sprint(tb) {
		t.Fatalf("topics differ:\n%v\n%v", ta, tb)
	}
	for _, ti := range ta {
		if ti.Topic == "empty" {
			continue
		}
		ra := resume(t, a, la, ti.Topic, ti.Epoch, 2)
		rb := resume(t, b, lb, ti.Topic, ti.Epoch, 2)
		if ra.Gone || rb.Gone || len(rb.Replay) != 10 || rb.Last != 12 || rb.Epoch != ti.Epoch {
			t.Fatalf("%s: resume from 2: saved %+v, restored %+v", ti.Topic, ra, rb)
		}
		for i := range ra.Replay {
			ma, mb := ra.Replay[i], rb.Replay[i]
			if ma.Seq != mb.Seq || ma.TS != mb.TS || string(ma.Data) != string(mb.Data) || string(ma.Frame) != string(mb.Frame) {
				t.Fatalf("%s: entry %d: saved %d %d %s, restored %d %d %s", ti.Topic, i, ma.Seq, ma.TS, ma.Data, mb.Seq, mb.TS, mb.Data)
			}
		}
		if gone := resume(t, b, lb, ti.Topic, ti.Epoch, 1); !gone.Gone {
			t.Fatalf("%s: resume from 1 (out of a 10-message history) not gone", ti.Topic)
		}
	}
	if la3, lb3 := latestOf(t, a, la, "t3"), latestOf(t, b, lb, "t3"); la3 != lb3 || !strings.HasPrefix(la3, "12 ") {
		t.Fatalf("latest %q, restored %q", la3, lb3)
	}
	m, err := b.Publish("t3", []byte("13"))
	if err != nil || m.Seq != 13 {
		t.Fatalf("publish after the restore: %v %v, want seq 13", m, err)
	}
	if m, err := b.Broadcast([]byte("2")); err != nil || m.Seq != 2 {
		t.Fatalf("broadcast after the restore: %v %v, want seq 2", m, err)
	}
}

// latestOf returns the newest value of topic and its seq.
func latestOf(t *testing.T, b *bus.Bus, l *local, topic string) string {
	t.Helper()
	if err := b.Subscribe(bus.Subscription{Subscriber: sub("l"), Topic: topic, Latest: true}); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.topic.Latest()
	if m == nil {
		return ""
	}
	return fmt.Sprintf("%d %d %s", m.Seq, m.TS, m.Data)
}

func contextDone() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx, cancel
}

// History older than the TTL at load time is dropped (a resume into it is
// gone, as it would have been without the restart); the newest value stays.
func TestTTLDropOnLoad(t *testing.T) {
	l := &local{}
	a := bus.New(bus.Config{HistoryTTL: time.Minute}, l)
	var ts []int64
	for i := 1; i <= 5; i++ {
		m, err := a.Publish("x", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, m.TS)
		time.Sleep(time.Millisecond) // distinct timestamps
	}
	epoch := a.Topics()[0].Epoch
	dir, _ := saved(t, a)
	// At the third message's time plus the TTL, messages 1 and 2 expired.
	lb := &local{}
	b, st, err := Load(dir, bus.Config{HistoryTTL: time.Minute}, lb, time.Unix(0, ts[2]).Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 5 || st.Kept != 3 {
		t.Fatalf("stats %+v, want 5 messages, 3 kept", st)
	}
	if ti, _ := b.Topic("x"); ti.HistoryLen != 3 || ti.LastSeq != 5 || ti.Epoch != epoch {
		t.Fatalf("restored %+v, want 3 entries, last seq 5, epoch %s", ti, epoch)
	}
	if r := resume(t, b, lb, "x", epoch, 1); !r.Gone {
		t.Fatalf("resume into expired history: %+v, want gone", r)
	}
	// Everything expired: no history, but the topic, its seq and newest
	// value stay (a resume from 5 misses nothing).
	b, _, err = Load(dir, bus.Config{HistoryTTL: time.Minute}, lb, time.Unix(0, ts[4]).Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := b.Topic("x")
	if x.HistoryLen != 0 || x.LastSeq != 5 || b.HistoryBytes() != 0 {
		t.Fatalf("all expired: %+v, %d history bytes", x, b.HistoryBytes())
	}
	if r := resume(t, b, lb, "x", epoch, 5); r.Gone || len(r.Replay) != 0 {
		t.Fatalf("resume from the last seq: %+v", r)
	}
	if r := resume(t, b, lb, "x", epoch, 4); !r.Gone {
		t.Fatalf("resume from 4: %+v, want gone", r)
	}
}

// The bus's caps hold after a load with lower ones: the most recently
// published topics stay, the oldest entries leave first.
func TestCapsHoldOnLoad(t *testing.T) {
	a, _ := filled(t, bus.Config{}, 20, 30)
	dir, _ := saved(t, a)
	b, _, err := Load(dir, bus.Config{MaxTopics: 5, HistorySize: 7}, &local{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := b.Topics()
	if len(got) != 5 {
		t.Fatalf("%d topics, want 5", len(got))
	}
	for _, ti := range got {
		// The last topics published were t15 … t19.
		if ti.Topic < "t15" || ti.HistoryLen != 7 || ti.LastSeq != 30 {
			t.Fatalf("kept %+v, want the newest topics with 7 entries", ti)
		}
	}
	full := a.HistoryBytes()
	c, _, err := Load(dir, bus.Config{MaxHistoryBytes: full / 3}, &local{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.HistoryBytes() > full/3 || c.HistoryBytes() < full/4 || c.HistoryEvictions() == 0 {
		t.Fatalf("history %d bytes after a load capped at %d (%d evictions)", c.HistoryBytes(), full/3, c.HistoryEvictions())
	}
	// The oldest (seqs) left first: every topic kept its newest entries.
	for _, ti := range c.Topics() {
		if ti.Topic != "empty" && (ti.HistoryLen == 0 || ti.HistoryLen > 15) {
			t.Fatalf("%+v: want the newest entries of every topic", ti)
		}
	}
}

func TestMissingFile(t *testing.T) {
	if _, _, err := Load(t.TempDir(), bus.Config{}, &local{}, time.Now()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// A file cut anywhere is refused, with nothing loaded.
func TestTruncatedRefused(t *testing.T) {
	a, _ := filled(t, bus.Config{}, 3, 4)
	_, data := saved(t, a)
	for n := range len(data) {
		_, err := loadBytes(t, data[:n], bus.Config{})
		want := ErrCorrupt
		if n < headerBytes+4 {
			want = ErrForeign
		}
		if !errors.Is(err, want) {
			t.Fatalf("cut at %d of %d: %v, want %v", n, len(data), err, want)
		}
	}
	if _, err := loadBytes(t, append(data, 0), bus.Config{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a byte after the checksum: %v", err)
	}
}

// A flipped bit anywhere is refused, with nothing loaded.
func TestBitFlipRefused(t *testing.T) {
	a, _ := filled(t, bus.Config{}, 3, 4)
	_, data := saved(t, a)
	for i := range len(data) {
		for _, bit := range []byte{0x01, 0x80, 0x10} {
			c := append([]byte(nil), data...)
			c[i] ^= bit
			_, err := loadBytes(t, c, bus.Config{})
			var want error
			switch {
			case i < len(Magic):
				want = ErrForeign
			case i < headerBytes:
				want = ErrVersion
			default:
				want = ErrCorrupt
			}
			if !errors.Is(err, want) {
				t.Fatalf("bit %#x of byte %d flipped: %v, want %v", bit, i, err, want)
			}
		}
	}
	// Flipping a value's byte keeps every length valid: only the
	// checksum can tell.
	i := strings.LastIndex(string(data), `"i":4`) + 5
	c := append([]byte(nil), data...)
	c[i-1] = '5'
	if _, err := loadBytes(t, c, bus.Config{}); err == nil || !strings.HasSuffix(err.Error(), "checksum mismatch") {
		t.Fatalf("a changed value: %v, want checksum mismatch", err)
	}
}

func TestForeignAndFutureRefused(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("WSPUSH"), []byte("#!/bin/sh\necho hello world\n"), withCRC([]byte("WSPUSHSX\x01\x00\x00\x00\x00\x00\x00"))} {
		_, err := loadBytes(t, data, bus.Config{})
		if !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), "snapshot: ") || !strings.Contains(err.Error(), FileName) {
			t.Fatalf("%q: %v, want ErrForeign naming the file", data, err)
		}
	}
	future := withCRC([]byte("WSPUSHST\x02\x00\x00\x00\x00\x00\x00"))
	if _, err := loadBytes(t, future, bus.Config{}); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("version 2: %v, want ErrVersion", err)
	}
}

// Lengths and counts are checked against what is left of the file (and the
// caps) before anything is allocated for them.
func TestHugeLengthsRefused(t *testing.T) {
	uv := binary.AppendUvarint
	head := []byte(Magic + "\x01\x00\x00\x00")
	topic := func(nameLen, seq, hist uint64) []byte {
		b := append(uv(append([]byte(nil), head...), 0), 1, 0) // bseq 0, 1 topic, 0 entries
		b = uv(b, nameLen)
		b = append(b, "abc"...)
		b = append(b, 2, 'e', 'p')
		b = uv(uv(b, seq), hist)
		return b
	}
	cases := map[string][]byte{
		"topic count":   uv(uv(append([]byte(nil), head...), 0), 1<<62),
		"entry count":   uv(append(uv(append([]byte(nil), head...), 0), 0), 1<<40),
		"name length":   topic(1<<40, 1, 0),
		"history count": topic(3, 5, 1<<40),
		"history > seq": topic(3, 5, 6),
	}
	value := append(append(topic(3, 1, 0), 0, 1, 0), uv(nil, 1<<31)...) // lastpub 0, latest: ts 0, a 2 GiB value
	cases["value length"] = value
	for name, body := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := loadBytes(t, withCRC(append(body, make([]byte, 64)...)), bus.Config{})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Fatalf("%s: %d bytes allocated", name, grew)
		}
	}
	// A value over -max-publish-bytes is refused too.
	a, _ := filled(t, bus.Config{}, 1, 1)
	_, data := saved(t, a)
	if _, err := loadBytes(t, data, bus.Config{MaxDataBytes: 4}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "over 4") {
		t.Fatalf("value over the cap: %v", err)
	}
}

// Publishes racing a save are each either in the file or refused.
func TestSaveRacingPublishes(t *testing.T) {
	l := &local{}
	a := bus.New(bus.Config{HistorySize: 1000}, l)
	var mu sync.Mutex
	acked := map[string]uint64{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("g%d", g)
			for {
				m, err := a.Publish(topic, []byte("1"))
				if errors.Is(err, bus.ErrSealed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[topic] = m.Seq
				mu.Unlock()
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	dir, _ := saved(t, a)
	wg.Wait()
	b, _, err := Load(dir, bus.Config{HistorySize: 1000}, l, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for topic, seq := range acked {
		if ti, _ := b.Topic(topic); ti.LastSeq != seq {
			t.Fatalf("%s: last acked seq %d, saved %d", topic, seq, ti.LastSeq)
		}
	}
}

// Store.Restore deletes the file it loaded (so a crash cannot reload it),
// and Run saves again.
func TestStoreRestoreDeletesAndRunSaves(t *testing.T) {
	a, _ := filled(t, bus.Config{}, 2, 2)
	dir, _ := saved(t, a)
	s, err := Open(Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Restore(bus.Config{}, &local{}, time.Now())
	if err != nil || len(b.Topics()) != 3 {
		t.Fatalf("restore: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the loaded file is still there: %v", err)
	}
	if _, err := b.Publish("t0", []byte("3")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextDone()
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	c, _, err := Load(dir, bus.Config{}, &local{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if ti, _ := c.Topic("t0"); ti.LastSeq != 3 {
		t.Fatalf("saved again: %+v, want last seq 3", ti)
	}
	// A corrupt file stops the restore and stays for a look.
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("nonsense"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(bus.Config{}, &local{}, time.Now()); !errors.Is(err, ErrForeign) {
		t.Fatalf("restore of a foreign file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatalf("the refused file was removed: %v", err)
	}
}

func TestOpenUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Dir: file}, nil); err == nil || !strings.HasPrefix(err.Error(), "snapshot: state directory") {
		t.Fatalf("a file as the state directory: %v", err)
	}
}
