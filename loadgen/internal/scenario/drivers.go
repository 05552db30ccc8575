package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"wspush/loadgen/internal/engine"
)

// driver returns the scenario's traffic source, if it has one.
func (r *Run) driver() func(ctx context.Context, start time.Time) {
	switch r.cfg.Scenario {
	case "publish":
		if r.cfg.Publisher && r.cfg.PubRate > 0 && !r.cfg.Broadcast {
			return r.publisher
		}
	case "churn":
		return func(ctx context.Context, start time.Time) {
			done := make(chan struct{})
			if r.cfg.Publisher && r.cfg.PubRate > 0 {
				go func() { defer close(done); r.publisher(ctx, start) }()
			} else {
				close(done)
			}
			if r.cfg.ChurnRate > 0 {
				r.churner(ctx, start)
			}
			<-done
		}
	case "echo":
		if r.cfg.PingRate > 0 {
			return r.pinger
		}
	}
	return nil
}

// pace calls fn at rate per second from start until ctx ends, or limit
// times when limit > 0 (open loop: when fn is slow the calls bunch up rather
// than drift).
func pace(ctx context.Context, start time.Time, rate float64, limit int, fn func(i int)) {
	step := float64(time.Second) / rate
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for i := 0; ctx.Err() == nil && (limit <= 0 || i < limit); i++ {
		due := start.Add(time.Duration(float64(i) * step))
		if d := time.Until(due); d > 200*time.Microsecond {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		fn(i)
	}
}

// pinger sends {"type":"ping","id":<send time ns>} round robin over the
// open connections; the pong's id gives the round trip with no state.
func (r *Run) pinger(ctx context.Context, start time.Time) {
	cursor := 0
	n := len(r.handles)
	if n == 0 {
		return
	}
	pace(ctx, start, r.cfg.PingRate, 0, func(int) {
		for tries := 0; tries < n; tries++ {
			c := r.handles[cursor].Load()
			cursor = (cursor + 1) % n
			if c == nil {
				continue
			}
			b := strconv.AppendInt([]byte(`{"type":"ping","id":`), time.Now().UnixNano(), 10)
			if c.WriteText(append(b, '}')) == nil {
				r.sent.Add(1)
			}
			return
		}
	})
}

// churner closes one open connection per tick; OnClose hands the slot back
// to the dialers, which reconnect and resume from the last sequence. A
// close is a close frame; the server answers and closes the socket (see
// engine.Conn.Close). A connection whose server has not done so after
// -timeout is aborted (abortUnanswered), so a slot never waits for ever.
func (r *Run) churner(ctx context.Context, start time.Time) {
	cursor := 0
	n := len(r.handles)
	if n == 0 {
		return
	}
	pace(ctx, start, r.cfg.ChurnRate, 0, func(int) {
		now := time.Now().UnixNano()
		r.abortUnanswered(now)
		for tries := 0; tries < n; tries++ {
			slot := cursor
			cursor = (cursor + 1) % n
			c := r.handles[slot].Load()
			if c == nil {
				continue
			}
			s := &r.shards[c.Shard]
			s.mu.Lock()
			st := &r.state[slot]
			ok := st.subbed && !st.closing
			if ok {
				st.closing = true
			}
			s.mu.Unlock()
			if ok {
				c.Close()
				r.unanswered = append(r.unanswered, closing{c: c, slot: uint32(slot), at: now})
				return
			}
		}
	})
}

// closing is a churn close not yet answered by the server.
type closing struct {
	c    *engine.Conn
	slot uint32
	at   int64 // Unix ns
}

// abortUnanswered aborts, oldest first, the churn closes the server has
// not answered within -timeout. r.unanswered belongs to the churner, and
// to drain once the churner has returned.
func (r *Run) abortUnanswered(now int64) {
	for len(r.unanswered) > 0 && (now-r.unanswered[0].at > int64(r.cfg.Timeout) || len(r.unanswered) > len(r.handles)) {
		p := r.unanswered[0]
		r.unanswered = r.unanswered[1:]
		if r.handles[p.slot].Load() == p.c { // OnClose has not run
			p.c.Abort()
			s := &r.shards[p.c.Shard]
			s.mu.Lock()
			s.errs["close_timeout"]++
			s.errCount++
			s.mu.Unlock()
		}
	}
}

type pubReply struct {
	Topic string `json:"topic"`
	Seq   uint64 `json:"seq"`
}

// publisher POSTs /v1/publish at cfg.PubRate, topics round robin, from
// cfg.PubAfter on, cfg.PubCount times (0: until the end).
func (r *Run) publisher(ctx context.Context, start time.Time) {
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	url := strings.TrimRight(r.cfg.Admin, "/") + "/v1/publish"
	pace(ctx, start.Add(r.cfg.PubAfter), r.cfg.PubRate, r.cfg.PubCount, func(i int) {
		k := i % r.cfg.Topics
		body := fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topicName(k), i)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(body))
		if err != nil {
			r.pubError("request")
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				r.pubError("http")
			}
			return
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		var pr pubReply
		if resp.StatusCode != http.StatusOK {
			r.pubError("status_" + strconv.Itoa(resp.StatusCode))
			return
		}
		if err := json.Unmarshal(b, &pr); err != nil {
			r.pubError("bad_reply")
			return
		}
		r.sent.Add(1)
		r.topicMu.Lock()
		r.pubCount++
		if pr.Seq > r.lastPub[k] {
			r.lastPub[k] = pr.Seq
		}
		r.topicMu.Unlock()
	})
}

func (r *Run) pubError(class string) {
	r.topicMu.Lock()
	r.pubErrs["publish_"+class]++
	r.topicMu.Unlock()
}
