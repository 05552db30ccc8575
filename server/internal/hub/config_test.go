package hub

import (
	"strings"
	"testing"
	"time"

	"wspush/server/internal/metrics"
)

// Any negative duration turns a feature off, as hub.Disabled does; a
// positive one below MinInterval is refused, whichever field it is in.
func TestNegativeDurationsAreOff(t *testing.T) {
	h, err := New(Config{PushInterval: -5 * time.Second, PingInterval: -time.Millisecond, IdleTimeout: Disabled}, metrics.New(nil))
	if err != nil {
		t.Fatal(err)
	}
	if h.PushInterval() != 0 || h.pushEvery != 0 || h.pingEvery != 0 || h.cfg.IdleTimeout != Disabled {
		t.Fatalf("push %v, pushEvery %d, pingEvery %d, idle %v: want all off", h.PushInterval(), h.pushEvery, h.pingEvery, h.cfg.IdleTimeout)
	}
	for _, cfg := range []Config{{PushInterval: time.Millisecond}, {PingInterval: 9 * time.Millisecond}, {IdleTimeout: time.Nanosecond}} {
		if _, err := New(cfg, metrics.New(nil)); err == nil || !strings.Contains(err.Error(), "below 10ms") {
			t.Errorf("%+v: error %v, want below 10ms", cfg, err)
		}
	}
}
