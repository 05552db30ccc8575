package scenario

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"wspush/loadgen/internal/fakews"
	"wspush/loadgen/result"
	"wspush/server/wire"
)

// runPresence runs publish with -presence against a fakews server whose
// every connection gets script; the server serves the topics, so the
// clients subscribe (and send "presence":true).
func runPresence(t *testing.T, conns int, script []fakews.Step, presence bool) *result.Result {
	t.Helper()
	res, srv := runWithHook(t, "publish", script, fakews.Options{}, conns, func(srv *fakews.Server, c *Config) {
		api := httptest.NewServer(srv.AdminHandler())
		t.Cleanup(api.Close)
		c.Admin, c.Topics, c.PubRate, c.Presence = api.URL, 1, 5, presence
		c.Grace = 200 * time.Millisecond
	}, nil)
	want := int64(0)
	if presence {
		want = int64(conns)
	}
	eq(t, "subs with \"presence\":true", srv.PresenceSubs.Load(), want)
	return res
}

func presenceTick(seq int, counts string) fakews.Step {
	return fakews.Step{Raw: wire.AppendFrame(nil, wire.OpText, []byte(`{"type":"tick","seq":`+strconv.Itoa(seq)+`,"due":1,"presence":`+counts+`}`))}
}

// Ticks are counted apart from the deliveries; those with a presence
// field are counted, and the last count each client saw is what the end
// check compares with the number of connected subscribers.
func TestPresenceCountsChecked(t *testing.T) {
	t.Parallel()
	wait := fakews.Step{Pause: 400 * time.Millisecond} // until the client has subscribed
	plain := fakews.Step{Tick: 2}
	right := runPresence(t, 3, []fakews.Step{{Welcome: true}, wait, presenceTick(1, `{"t0":2}`), plain, presenceTick(3, `{"t0":3}`)}, true)
	eq(t, "ticks", right.Ticks, int64(9))
	eq(t, "presence ticks", right.PresenceTicks, int64(6))
	eq(t, "errors", len(right.Errors), 0)
	if bad, n := right.PresenceCheck(0); n != 0 {
		t.Errorf("right counts judged wrong: %q", bad)
	}
	if ts := right.TopicStats[0]; ts.PresSubs != 3 || ts.PresSeen != 3 || ts.PresMin != 3 || ts.PresMax != 3 {
		t.Errorf("topic stat %+v", ts)
	}
	if right.Messages > right.Sent*3 {
		t.Errorf("messages %d include ticks (%d publishes to 3)", right.Messages, right.Sent)
	}

	stale := runPresence(t, 3, []fakews.Step{{Welcome: true}, wait, presenceTick(1, `{"t0":3}`), presenceTick(2, `{"t0":2}`)}, true)
	if bad, n := stale.PresenceCheck(0); n != 1 || !strings.Contains(bad[0], "last counts 2..2, want 3") {
		t.Errorf("stale counts: %d %q", n, bad)
	}
	other := runPresence(t, 2, []fakews.Step{{Welcome: true}, wait, presenceTick(1, `{"t9":2}`)}, true)
	eq(t, "presence_bad", other.Errors["presence_bad"], int64(2))
	if _, n := other.PresenceCheck(0); n != 1 {
		t.Errorf("a count for another topic passed the check")
	}
	unasked := runPresence(t, 2, []fakews.Step{{Welcome: true}, wait, presenceTick(1, `{"t0":2}`)}, false)
	eq(t, "presence_unasked", unasked.Errors["presence_unasked"], int64(2))
}

// A count a tick carries after the end of -duration is not the one
// checked: from then on the worker processes (and other wsload processes)
// stop and close their connections each at its own pace, so a client of a
// worker that has not yet taken its end check saw, on a tick after
// another's first closes, a count 1–3 below the subscribers it is checked
// against (the 1M presence run of 2026-12-01 09:55: 14 of 100 topics).
func TestPresenceCountAfterTheEndNotKept(t *testing.T) {
	t.Parallel()
	res, srv := runWithHook(t, "publish", []fakews.Step{
		{Welcome: true},
		{Pause: 400 * time.Millisecond}, // until the client has subscribed
		presenceTick(1, `{"t0":3}`),
		// past the end of -duration (1 s), before the drain's end
		// (250 ms without a delivery after it)
		{Pause: 700 * time.Millisecond},
		presenceTick(2, `{"t0":2}`),
	}, fakews.Options{}, 3, func(srv *fakews.Server, c *Config) {
		api := httptest.NewServer(srv.AdminHandler())
		t.Cleanup(api.Close)
		c.Admin, c.Topics, c.PubRate, c.Presence = api.URL, 1, 5, true
		c.Duration, c.Grace = time.Second, 2*time.Second
	}, nil)
	eq(t, "subs with \"presence\":true", srv.PresenceSubs.Load(), int64(3))
	eq(t, "presence ticks", res.PresenceTicks, int64(6)) // the late ones are still counted
	if bad, n := res.PresenceCheck(0); n != 0 {
		t.Errorf("a count read after the end was checked: %q", bad)
	}
}
