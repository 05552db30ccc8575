package snapshot

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"wspush/server/internal/bus"
)

// BenchmarkSaveLoad100kTopics measures the restart's cost at 100,000
// topics × 100 messages of about 80 bytes each: the state file's size and
// the time to save and to load it (run with -benchtime 1x; it needs about
// 6 GB of memory):
//
//	go test -run XXX -bench SaveLoad100k -benchtime 1x ./server/internal/snapshot
func BenchmarkSaveLoad100kTopics(b *testing.B) {
	const topics, msgs = 100_000, 100
	cfg := bus.Config{MaxTopics: topics, HistorySize: msgs, MaxHistoryBytes: 8 << 30}
	for range b.N {
		a := bus.New(cfg, &local{})
		names := make([]string, topics)
		for j := range names {
			names[j] = "prices/instrument-" + strconv.Itoa(j)
		}
		value := make([]byte, 0, 96)
		for i := range msgs {
			for j, name := range names {
				value = fmt.Appendf(value[:0], `{"bid":%d.125,"ask":%d.250,"qty":%d,"venue":"XLON","n":%d}`, 10000+j, 10000+j, i*7, i)
				if _, err := a.Publish(name, value); err != nil {
					b.Fatal(err)
				}
			}
		}
		dir := b.TempDir()
		b.ResetTimer()
		saved, err := Save(dir, a)
		if err != nil {
			b.Fatal(err)
		}
		held := a.HistoryBytes()
		a = nil
		runtime.GC()
		r, loaded, err := Load(dir, cfg, &local{}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if loaded.Topics != topics || loaded.Kept != topics*msgs || r.HistoryBytes() != held {
			b.Fatalf("loaded %+v, %d history bytes; saved %+v, %d", loaded, r.HistoryBytes(), saved, held)
		}
		b.ReportMetric(float64(saved.Bytes)/(1<<20), "file_MiB")
		b.ReportMetric(float64(held)/(1<<20), "history_MiB")
		b.ReportMetric(saved.Took.Seconds(), "save_s")
		b.ReportMetric(loaded.Took.Seconds(), "load_s")
	}
}
