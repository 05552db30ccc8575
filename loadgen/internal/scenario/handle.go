package scenario

import (
	"encoding/json"
	"strconv"

	"wspush/loadgen/internal/engine"
	"wspush/loadgen/internal/seq"
	"wspush/loadgen/result"
	"wspush/server/wire"
)

// topicMsg is a topic frame ("msg", "subscribed"), decoded with
// encoding/json; the epoch is kept as JSON text to be echoed on resume.
type topicMsg struct {
	Type        string          `json:"type"`
	Topic       string          `json:"topic"`
	Seq         uint64          `json:"seq"`
	TS          int64           `json:"ts"`
	Epoch       json.RawMessage `json:"epoch"`
	HistoryGone bool            `json:"history_gone"`
}

// OnMessage implements engine.Handler; it runs on the connection's poller
// (or its dialer, for frames that came with the 101).
func (r *Run) OnMessage(c *engine.Conn, p []byte, now int64) {
	s := &r.shards[c.Shard]
	st := &r.state[c.Slot]
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq, ts, ok := parseMsg(p); ok {
		// the delivery path: no encoding/json (msgparse.go)
		s.msgs++
		welcomeCheck(s, st)
		r.onMsg(s, st, seq, ts, now)
		return
	}
	if isWelcome(p) { // once per connection: no encoding/json (msgparse.go)
		s.welcome(st)
		return
	}
	m := &s.scratch
	if err := wire.ParseServer(p, m); err != nil {
		s.errs["bad_frame"]++
		s.errCount++
		return
	}
	switch m.Type {
	case wire.TypeWelcome:
		s.welcome(st)
		return
	case wire.TypeError:
		s.errs["server_error:"+m.Code]++
		s.errCount++
		return
	}
	s.msgs++
	welcomeCheck(s, st)
	switch m.Type {
	case wire.TypeTick:
		if r.cfg.Scenario == "publish" || r.cfg.Scenario == "churn" {
			// ticks are background traffic there: counted apart from
			// the deliveries, and read for the presence counts they carry
			s.msgs--
			s.ticks++
			if m.Presence != nil {
				s.presTicks++
				r.onPresence(s, st, c.Slot, m.Presence, now)
			}
			return
		}
		s.observe(&st.win, m.Seq)
		if r.cfg.Scenario != "echo" {
			s.record(now - m.Due)
		}
	case wire.TypePong:
		s.pongs++
		// the ping id is the send time in Unix ns
		if sentAt, err := strconv.ParseInt(string(m.ID), 10, 64); err == nil {
			s.record(now - sentAt)
		} else {
			s.errs["bad_pong_id"]++
			s.errCount++
		}
	case "subscribed", "msg":
		var tm topicMsg
		if err := json.Unmarshal(p, &tm); err != nil {
			s.errs["bad_frame"]++
			s.errCount++
			return
		}
		s.msgs -= boolInt(tm.Type == "subscribed")
		r.onTopic(s, st, &tm, now)
	default:
		s.errs["unexpected:"+clip(m.Type)]++
		s.errCount++
	}
}

func (r *Run) onTopic(s *shard, st *connState, tm *topicMsg, now int64) {
	if tm.Type == "subscribed" {
		switch {
		case tm.HistoryGone:
			// A loss the server signalled (a resume it could not serve, or
			// a cluster node that missed messages): counted, not a gap.
			s.errs["history_gone"]++
			s.errCount++
			st.win.Reset(tm.Seq)
		case !st.resume:
			st.win.Reset(tm.Seq)
		}
		st.subbed, st.resume = true, false
		if k, ok := r.topicIndex(tm.Topic); ok {
			r.topicMu.Lock()
			if string(r.epochs[k]) != string(tm.Epoch) {
				r.epochs[k] = append(json.RawMessage(nil), tm.Epoch...)
			}
			r.topicMu.Unlock()
		}
		return
	}
	r.onMsg(s, st, tm.Seq, tm.TS, now)
}

// onMsg checks a delivery's sequence number and records its end-to-end
// lag (now − the server's ts). With -broadcast every connection counts as
// subscribed to the broadcasts from its connect on.
func (r *Run) onMsg(s *shard, st *connState, seq uint64, ts, now int64) {
	if !st.subbed && !r.cfg.Broadcast {
		s.errs["msg_before_subscribed"]++
		s.errCount++
		return
	}
	s.observe(&st.win, seq)
	s.record(now - ts)
}

// welcome counts a connection's welcome; a second one is an error.
func (s *shard) welcome(st *connState) {
	if !st.welcomed {
		s.welcomes++
		st.welcomed = true
	} else {
		s.errs["extra_welcome"]++
		s.errCount++
	}
}

// welcomeCheck counts, once per connection, a message before its welcome.
func welcomeCheck(s *shard, st *connState) {
	if !st.welcomed && !st.counted {
		st.counted = true
		s.welcomeMiss++
	}
}

// onPresence keeps the count a tick carried for the connection's topic,
// if the tick was read (now) before the end of -duration (Run.presEnd):
// after it other workers close their connections, which the counts on
// later ticks rightly show. A count for another topic, or one not
// positive (the client itself is subscribed), is an error.
func (r *Run) onPresence(s *shard, st *connState, slot uint32, counts map[string]int64, now int64) {
	if !r.cfg.Presence {
		s.errs["presence_unasked"]++
		s.errCount++
		return
	}
	n, ok := counts[topicName(r.topicOf(slot))]
	if !ok || len(counts) != 1 || n < 1 {
		s.errs["presence_bad"]++
		s.errCount++
		return
	}
	if end := r.presEnd.Load(); end != 0 && now >= end {
		return
	}
	st.pres = n
}

func (s *shard) observe(w *seq.Window, n uint64) {
	v, d := w.Observe(n)
	s.gaps += d
	switch v {
	case seq.Duplicate:
		s.dups++
	case seq.Reorder:
		s.reorders++
	}
}

func (s *shard) record(ns int64) {
	us := ns / 1000
	s.lag.Record(us)
	s.lagSec.Record(us)
}

// OnClose implements engine.Handler. In churn every slot whose connection
// ended reconnects and resumes its subscription from the last sequence
// number it got: at once when wsload closed it (churned), after a backoff
// when it ended unplanned (counted in disconnects, reconnectLater).
func (r *Run) OnClose(c *engine.Conn, err error) {
	r.handles[c.Slot].CompareAndSwap(c, nil)
	if r.stopping.Load() {
		return
	}
	s := &r.shards[c.Shard]
	st := &r.state[c.Slot]
	s.mu.Lock()
	churned := st.closing
	st.closing = false
	if !churned {
		if cls := engine.CloseClass(err); cls != "" {
			s.errs["disc:"+cls]++
			s.errCount++
		}
	}
	again := r.cfg.Scenario == "churn"
	if again {
		st.resume = st.resume || st.subbed
		st.welcomed, st.counted, st.subbed = false, false, false
		st.pres = 0 // the next connection's ticks tell again
	}
	s.mu.Unlock()
	if again && !churned {
		r.reconnectLater(s, c.Slot)
		return
	}
	if churned {
		select {
		case r.redial <- c.Slot:
		default:
			s.mu.Lock()
			s.errs["redial_queue_full"]++
			s.errCount++
			s.mu.Unlock()
		}
	}
}

// subscribe sends the sub for the connection's topic (publish, churn),
// resuming from where the previous connection of this slot stopped.
func (r *Run) subscribe(c *engine.Conn) {
	k := r.topicOf(c.Slot)
	s := &r.shards[c.Shard]
	s.mu.Lock()
	st := &r.state[c.Slot]
	resume, since := st.resume, st.win.Max
	s.mu.Unlock()
	b := []byte(`{"type":"sub","topic":`)
	b = strconv.AppendQuote(b, topicName(k))
	if r.cfg.Presence {
		b = append(b, `,"presence":true`...)
	}
	b = append(b, `,"mode":"stream","id":`...)
	b = strconv.AppendUint(b, uint64(c.Slot), 10)
	if resume {
		b = append(b, `,"since":`...)
		b = strconv.AppendUint(b, since, 10)
		r.topicMu.Lock()
		if e := r.epochs[k]; e != nil {
			b = append(b, `,"epoch":`...)
			b = append(b, e...)
		}
		r.topicMu.Unlock()
	}
	b = append(b, '}')
	_ = c.WriteText(b) // a failed write shows up as a disconnect
}

func (r *Run) topicOf(slot uint32) int {
	return (r.cfg.Offset + int(slot)*r.cfg.Stride) % r.cfg.Topics
}

func topicName(k int) string { return "t" + strconv.Itoa(k) }

func (r *Run) topicIndex(name string) (int, bool) {
	if len(name) < 2 || name[0] != 't' {
		return 0, false
	}
	k, err := strconv.Atoi(name[1:])
	if err != nil || k < 0 || k >= len(r.epochs) {
		return 0, false
	}
	return k, true
}

// tailLoss gathers, for publish and churn, each topic's subscribers and
// the sums of their highest and base sequence numbers (and, with
// -presence, the last counts its open subscribers saw); with the highest
// publish acknowledged per topic (known to the publishing process only)
// result.FinishTopics turns them into expected and lost counts exactly,
// also after merging workers.
func (r *Run) tailLoss() {
	if r.cfg.Scenario != "publish" && r.cfg.Scenario != "churn" {
		return
	}
	r.topicStats = make([]result.TopicStat, r.cfg.Topics)
	r.topicMu.Lock()
	for k := range r.topicStats {
		r.topicStats[k].LastPub = r.lastPub[k]
	}
	r.topicMu.Unlock()
	for i := range r.shards {
		r.shards[i].mu.Lock()
	}
	for slot := range r.state {
		st := &r.state[slot]
		if !st.subbed && !st.resume {
			continue
		}
		t := &r.topicStats[r.topicOf(uint32(slot))]
		t.Subs++
		t.SumMax += st.win.Max
		t.SumBase += st.win.Base
		if r.cfg.Presence && st.subbed && r.handles[slot].Load() != nil {
			t.AddPresence(st.pres)
		}
	}
	for i := range r.shards {
		r.shards[i].mu.Unlock()
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func clip(s string) string {
	if len(s) > 24 {
		return s[:24]
	}
	return s
}
