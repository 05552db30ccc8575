// Package tally counts live items per key: connections per address,
// connections per user. A key's entry exists only while its count is
// above zero, so memory follows what is live.
//
// Concurrency: a Tally is safe for concurrent use; each call holds its one
// mutex for a map operation. The zero Tally is ready to use.
package tally

import "sync"

// Tally counts per key K.
type Tally[K comparable] struct {
	mu sync.Mutex // guards m
	m  map[K]int32
}

// Inc counts one more for k, unless k is already at max (max ≤ 0: no cap);
// it reports whether it counted.
func (t *Tally[K]) Inc(k K, max int32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[K]int32{}
	}
	n := t.m[k]
	if max > 0 && n >= max {
		return false
	}
	t.m[k] = n + 1
	return true
}

// Dec counts one fewer for k.
func (t *Tally[K]) Dec(k K) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.m[k]; n <= 1 {
		delete(t.m, k)
	} else {
		t.m[k] = n - 1
	}
}

// Count returns k's count.
func (t *Tally[K]) Count(k K) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int(t.m[k])
}

// Keys returns how many keys have a count above zero.
func (t *Tally[K]) Keys() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
