package bus

import (
	"strconv"
	"strings"
	"testing"
)

type nopLocal struct{}

func (nopLocal) Deliver(*Message)   {}
func (nopLocal) Broadcast(*Message) {}
func (nopLocal) Overloaded() bool   { return false }

func (nopLocal) Subscribe(*Topic, Subscription, Start) error { return nil }
func (nopLocal) Unsubscribe(*Topic, Subscription) bool       { return true }

// BenchmarkPublish publishes 256-byte values round-robin to 1,000 topics,
// with history on (the default size, so rings fill and the oldest leave).
func BenchmarkPublish(b *testing.B) { benchPublish(b, Config{}) }

// BenchmarkPublishOverTheCap is BenchmarkPublish with history at a 1 MiB
// cap, so that every publish also evicts the oldest entry bus-wide, mostly
// of other topics (queued trims).
func BenchmarkPublishOverTheCap(b *testing.B) { benchPublish(b, Config{MaxHistoryBytes: 1 << 20}) }

func benchPublish(b *testing.B, cfg Config) {
	bus := New(cfg, nopLocal{})
	names := make([]string, 1000)
	for i := range names {
		names[i] = "bench." + strconv.Itoa(i)
	}
	data := []byte(`"` + strings.Repeat("x", 254) + `"`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := bus.Publish(names[i%len(names)], data); err != nil {
			b.Fatal(err)
		}
	}
}
