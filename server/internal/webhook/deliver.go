package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Run delivers batches until ctx is done, then flushes (see the package
// doc). It returns nil.
func (s *Sender) Run(ctx context.Context) error {
	batch := make([]Event, 0, s.cfg.Batch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flush(batch)
			return nil
		case e := <-s.ch:
			batch = append(batch, e)
		}
		timer.Reset(s.cfg.MaxDelay)
	fill:
		for len(batch) < s.cfg.Batch {
			select {
			case e := <-s.ch:
				batch = append(batch, e)
			case <-timer.C:
				break fill
			case <-ctx.Done():
				break fill
			}
		}
		timer.Stop()
		if !s.deliver(ctx, batch) { // stopped while retrying: the flush tries again
			s.flush(batch)
			return nil
		}
		batch = batch[:0]
	}
}

// flush delivers pending and then what is queued, in batches, until the
// queue is empty or FlushTimeout passes; the rest is dropped as shutdown.
func (s *Sender) flush(pending []Event) {
	s.stopped.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.FlushTimeout)
	defer cancel()
	batch := pending
	for {
		for len(batch) < s.cfg.Batch {
			select {
			case e := <-s.ch:
				batch = append(batch, e)
				continue
			default:
			}
			break
		}
		if len(batch) == 0 {
			return
		}
		if !s.deliver(ctx, batch) {
			s.dropped[DropShutdown].Add(len(batch) + len(s.ch))
			for len(s.ch) > 0 { // emptied so that the gauge reads 0
				<-s.ch
			}
			return
		}
		batch = batch[:0]
	}
}

// deliver POSTs one batch, retrying as configured. It returns false, with
// the batch neither sent nor counted, when ctx ended first.
func (s *Sender) deliver(ctx context.Context, batch []Event) bool {
	body, err := json.Marshal(Body{Events: batch})
	if err != nil { // cannot happen: strings and numbers only
		s.dropped[DropRejected].Add(len(batch))
		return true
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		retry, err := s.post(ctx, body)
		if err == nil {
			s.sent.Add(len(batch))
			s.batches.Inc()
			s.latency.Update(time.Duration(time.Now().UnixNano() - batch[0].queued).Seconds())
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !retry {
			s.dropped[DropRejected].Add(len(batch))
			s.cfg.Logger.Warn("webhook: batch refused, dropped", "events", len(batch), "err", err)
			return true
		}
		wait := s.backoff(attempt)
		if attempt >= s.cfg.MaxAttempts || time.Since(start)+wait > s.cfg.MaxRetryTime {
			s.dropped[DropExhausted].Add(len(batch))
			s.cfg.Logger.Warn("webhook: delivery failed, batch dropped", "events", len(batch), "attempts", attempt, "err", err)
			return true
		}
		s.retries.Inc()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// backoff is the wait after failed attempt n (from 1): Backoff doubled
// n-1 times, capped at MaxBackoff, drawn from its upper half.
func (s *Sender) backoff(n int) time.Duration {
	d := s.cfg.MaxBackoff
	if n < 31 {
		d = min(s.cfg.Backoff<<(n-1), s.cfg.MaxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

// post sends one signed attempt; retry reports whether a failure is worth
// retrying (network error, timeout, 408, 429, 5xx).
func (s *Sender) post(ctx context.Context, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("webhook: %w", err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wspush-webhook/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(s.cfg.Secret, ts, body))
	resp, err := s.client.Do(req)
	if err != nil {
		return true, fmt.Errorf("webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, fmt.Errorf("webhook: receiver answered %s", resp.Status)
	default:
		return false, fmt.Errorf("webhook: receiver answered %s", resp.Status)
	}
}
