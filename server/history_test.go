package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"wspush/server/wire"
)

// A tiny -max-history-bytes: publishes to other topics push the oldest
// topic's history out, a resume into it gets history_gone (never a silent
// gap), a resume after the evicted range replays exactly, and the history
// byte gauge stays under the cap.
func TestHistoryCapEvictsOldestAcrossTopicsAndResumeSaysGone(t *testing.T) {
	const maxBytes = 8 << 10
	s := startServer(t, "-push-interval", "0", "-max-history-bytes", strconv.Itoa(maxBytes))
	value := `"` + strings.Repeat("o", 300) + `"`
	for i := 0; i < 5; i++ {
		publish(t, s, "old", value)
	}
	c := dial(t, s.ws)
	next(t, c, 2*time.Second)
	cur := subscribe(t, c, `{"type":"sub","topic":"old"}`)
	send(t, c, `{"type":"unsub","topic":"old"}`)
	nextOf(t, c, wire.TypeUnsubscribed, 2*time.Second)

	// Within the cap "old" replays all five.
	all := subscribe(t, c, fmt.Sprintf(`{"type":"sub","topic":"old","since":0,"epoch":%q}`, cur.Epoch))
	if all.HistoryGone {
		t.Fatalf("resume before any eviction: %+v", all)
	}
	for want := uint64(1); want <= 5; want++ {
		if m := next(t, c, 2*time.Second); m.Seq != want {
			t.Fatalf("replay %+v, want seq %d", m, want)
		}
	}
	send(t, c, `{"type":"unsub","topic":"old"}`)
	nextOf(t, c, wire.TypeUnsubscribed, 2*time.Second)

	// 40 newer messages on other topics, ~18 KB of history: "old" goes first.
	for i := 0; i < 40; i++ {
		publish(t, s, "new."+strconv.Itoa(i%4), value)
	}
	gone := subscribe(t, c, fmt.Sprintf(`{"type":"sub","topic":"old","since":0,"epoch":%q}`, cur.Epoch))
	if !gone.HistoryGone || gone.Seq != 5 {
		t.Fatalf("resume into the evicted history: %+v", gone)
	}
	send(t, c, `{"type":"unsub","topic":"old"}`)
	nextOf(t, c, wire.TypeUnsubscribed, 2*time.Second)

	// The newest messages of new.3 are kept: a resume after its evicted range replays exactly.
	n3 := subscribe(t, c, `{"type":"sub","topic":"new.3"}`)
	send(t, c, `{"type":"unsub","topic":"new.3"}`)
	nextOf(t, c, wire.TypeUnsubscribed, 2*time.Second)
	r := subscribe(t, c, fmt.Sprintf(`{"type":"sub","topic":"new.3","since":7,"epoch":%q}`, n3.Epoch))
	if r.HistoryGone || n3.Seq != 10 {
		t.Fatalf("resume of new.3 (last %d) from 7: %+v", n3.Seq, r)
	}
	for want := uint64(8); want <= 10; want++ {
		if m := next(t, c, 2*time.Second); m.Type != wire.TypeMsg || m.Topic != "new.3" || m.Seq != want {
			t.Fatalf("replay %+v, want new.3 seq %d", m, want)
		}
	}

	st := stats(t, s)
	if hb, _ := st["history_bytes"].(float64); hb <= 0 || hb > maxBytes {
		t.Fatalf("history_bytes in /v1/stats: %v, want in (0, %d]", st["history_bytes"], maxBytes)
	}
	_, metrics := get(t, s.admin+"/metrics")
	var gauge float64
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "wspush_history_bytes "); ok {
			gauge, _ = strconv.ParseFloat(v, 64)
		}
	}
	if gauge <= 0 || gauge > maxBytes || !strings.Contains(metrics, "wspush_history_evictions_total ") {
		t.Fatalf("wspush_history_bytes %v (cap %d); evictions counter present: %v", gauge, maxBytes, strings.Contains(metrics, "wspush_history_evictions_total "))
	}
}

// A client publishing faster than -max-client-pub-rate gets error frames
// "rate_limited" for the excess (with its id), nothing of it is published,
// and the connection stays.
func TestClientPubOverTheRateGetsRateLimited(t *testing.T) {
	s := startServer(t, "-push-interval", "0", "-client-publish", "-max-client-pub-rate", "1", "-max-client-pub-burst", "3")
	c := dial(t, s.ws)
	next(t, c, 2*time.Second)
	for i := 1; i <= 5; i++ {
		send(t, c, fmt.Sprintf(`{"type":"pub","topic":"fast","data":%d,"id":%d}`, i, i))
	}
	published, limited := 0, 0
	for i := 1; i <= 5; i++ {
		m := next(t, c, 2*time.Second)
		switch {
		case m.Type == wire.TypePublished && string(m.ID) == strconv.Itoa(i):
			published++
		case m.Type == wire.TypeError && m.Code == wire.CodeRateLimited && string(m.ID) == strconv.Itoa(i):
			limited++
		default:
			t.Fatalf("answer to pub %d: %+v", i, m)
		}
	}
	if published != 3 || limited != 2 {
		t.Fatalf("%d published, %d rate_limited; want 3 and 2", published, limited)
	}
	if ti, _ := s.n.bus.Topic("fast"); ti.LastSeq != 3 {
		t.Fatalf("topic fast is at seq %d, want 3", ti.LastSeq)
	}
	send(t, c, `{"type":"ping","id":"still-here"}`)
	if m := next(t, c, 2*time.Second); m.Type != wire.TypePong {
		t.Fatalf("after rate_limited: %+v", m)
	}
	if st := stats(t, s); st["bad_messages"].(float64) != 0 {
		t.Fatalf("rate_limited pubs counted as bad messages: %v", st["bad_messages"])
	}
}
