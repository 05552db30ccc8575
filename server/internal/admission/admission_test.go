package admission

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestBucketRateAndBurst(t *testing.T) {
	l := NewLimit(10, 5) // one per 100 ms, 5 at once
	var b Bucket
	now := time.Now().UnixNano()
	for i := 0; i < 5; i++ {
		if !b.Allow(now, l) {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	if b.Allow(now, l) {
		t.Fatal("6th event at once allowed")
	}
	if b.Allow(now+99*int64(time.Millisecond), l) {
		t.Fatal("allowed before a token refilled")
	}
	if !b.Allow(now+100*int64(time.Millisecond), l) {
		t.Fatal("refused after a token refilled")
	}
	// Over a long idle period the burst refills, but no further.
	later := now + int64(time.Hour)
	n := 0
	for b.Allow(later, l) {
		n++
	}
	if n != 5 {
		t.Fatalf("%d events after idling, want the burst of 5", n)
	}
	var free Bucket
	for i := 0; i < 1000; i++ {
		if !free.Allow(now, Limit{}) {
			t.Fatal("zero Limit refused")
		}
	}
}

func TestRateConcurrentExact(t *testing.T) {
	r := NewRate(NewLimit(1, 100)) // burst 100, next token in a second
	now := time.Now().UnixNano()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, waits := 0, 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				a, wait := r.Allow(now)
				mu.Lock()
				if a {
					ok++
				} else if wait > 0 && wait <= time.Second {
					waits++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 100 || waits != 700 {
		t.Fatalf("allowed %d, refused with a wait %d; want 100 and 700", ok, waits)
	}
}

func TestPerIP(t *testing.T) {
	p := NewPerIP(2)
	a := netip.MustParseAddr("127.0.0.5")
	mapped := netip.MustParseAddr("::ffff:127.0.0.5")
	if !p.Acquire(a) || !p.Acquire(mapped) || p.Acquire(a) {
		t.Fatal("cap of 2 not applied across mapped and plain forms")
	}
	if !p.Acquire(netip.MustParseAddr("127.0.0.6")) {
		t.Fatal("another address refused")
	}
	p.Release(a)
	if p.Count(a) != 1 || !p.Acquire(a) {
		t.Fatal("release did not free a slot")
	}
	p.Release(a)
	p.Release(a)
	if p.Count(a) != 0 || p.t.Keys() != 1 {
		t.Fatalf("%d addresses left, want only 127.0.0.6", p.t.Keys())
	}
	if !NewPerIP(0).Acquire(a) || RemoteIP("127.0.0.9:80") != netip.MustParseAddr("127.0.0.9") || RemoteIP("x").IsValid() {
		t.Fatal("no-cap or RemoteIP wrong")
	}
}
