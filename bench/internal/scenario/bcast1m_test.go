package scenario

import (
	"testing"
	"time"

	"wspush/loadgen/result"
)

func TestBcast1MConfigChecked(t *testing.T) {
	t.Parallel()
	c := Bcast1MConfig{Target: "floor"}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.Conns != 1_000_000 || c.Procs != 60 || c.After != 270*time.Second || c.Port != 9000 || c.AdminPort != 10000 {
		t.Errorf("defaults = %+v", c)
	}
	for _, bad := range []Bcast1MConfig{
		{Target: "gorilla"},
		{Target: "wspush", Procs: 10, MaxConns: 1000},
		{Target: "wspush", Every: time.Millisecond},
		{Target: "wspush", Broadcasts: 11},
	} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestBcast1MArrivals: a broadcast's figures come from its own seconds of
// wsload's series only.
func TestBcast1MArrivals(t *testing.T) {
	t.Parallel()
	sec := func(t int, msgs int64, lags ...int64) result.Second {
		h := result.NewHist()
		for _, us := range lags {
			h.Record(us)
		}
		return result.Second{T: t, Msgs: msgs, LagHist: h.Encode()}
	}
	series := []result.Second{sec(9, 0), sec(10, 2, 1000, 900_000), sec(11, 1, 1_800_000), sec(30, 1, 5000)}
	var b BcastRound
	arrivals(&b, series, 9, 20)
	if b.Deliveries != 3 || b.FirstMS < 0.9 || b.FirstMS > 1.1 || b.LastMS < 1790 || b.LastMS > 1810 {
		t.Errorf("arrivals = %+v, want 3 deliveries, first ~1 ms, last ~1800 ms", b)
	}
}
