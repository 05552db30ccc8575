package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
	"time"

	"wspush/server/internal/metrics"
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"events":[]}`)
	sig := Sign("secret-secret-secret", ts, body)
	mac := hmac.New(sha256.New, []byte("secret-secret-secret"))
	mac.Write([]byte(ts + "." + string(body)))
	if want := "v1=" + hex.EncodeToString(mac.Sum(nil)); sig != want {
		t.Fatalf("signature %q, want %q", sig, want)
	}
	if err := Verify("secret-secret-secret", ts, sig, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"other body":   Verify("secret-secret-secret", ts, sig, []byte(`{"events":[1]}`), now, time.Minute),
		"other secret": Verify("another-secret-value", ts, sig, body, now, time.Minute),
		"other ts":     Verify("secret-secret-secret", strconv.FormatInt(now.Unix()+1, 10), sig, body, now, time.Minute),
		"no prefix":    Verify("secret-secret-secret", ts, sig[3:], body, now, time.Minute),
	} {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	if err := Verify("secret-secret-secret", ts, sig, body, now.Add(10*time.Minute), 5*time.Minute); !errors.Is(err, ErrStale) {
		t.Errorf("replayed after 10 min: %v, want ErrStale", err)
	}
	if err := Verify("secret-secret-secret", "x", sig, body, now, time.Minute); !errors.Is(err, ErrStale) {
		t.Errorf("bad ts: %v, want ErrStale", err)
	}
}

func TestParseKinds(t *testing.T) {
	if ks, err := ParseKinds("all"); err != nil || ks != nil {
		t.Fatalf("all: %v %v", ks, err)
	}
	ks, err := ParseKinds("topic_occupied, connection_closed")
	if err != nil || len(ks) != 2 || ks[1] != ConnectionClosed {
		t.Fatalf("%v %v", ks, err)
	}
	if _, err := ParseKinds("topic_occupied,nope"); err == nil {
		t.Fatal("unknown kind accepted")
	}
}

func TestBackoff(t *testing.T) {
	s := &Sender{cfg: Config{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		for range 50 {
			if d := s.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// TestEmitNeverBlocks: over the buffer, events are dropped and counted
// (with no Run taking them), kinds not asked for are not queued, and a nil
// sender ignores every call.
func TestEmitNeverBlocks(t *testing.T) {
	var nilSender *Sender
	nilSender.TopicOccupancy("x", true)
	nilSender.ConnectionClosed("c1", "ann", "idle")
	s, err := New(Config{URL: "http://127.0.0.1:1/", Secret: "0123456789abcdef", Buffer: 3,
		Events: []Kind{ConnectionClosed}}, metrics.New(func() int64 { return 0 }).Registry())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			s.ConnectionClosed("c1", "ann", "idle")
			s.TopicOccupancy("x", true) // not asked for
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("emit blocked")
	}
	if q, d := s.queued.Get(), s.Dropped(DropBufferFull); q != 3 || d != 7 {
		t.Fatalf("queued %d, dropped %d; want 3 and 7", q, d)
	}
	if _, err := New(Config{URL: "ftp://x", Secret: "short"}, metrics.New(func() int64 { return 0 }).Registry()); err == nil {
		t.Fatal("bad URL and short secret accepted")
	}
}
