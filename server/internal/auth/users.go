package auth

import "sync"

// Users counts connections per authenticated user (the token's sub), so
// that stats can report distinct users. It holds one map entry per user
// with a live connection.
type Users struct {
	mu sync.Mutex
	m  map[string]int32
}

// Add counts a connection of sub.
func (u *Users) Add(sub string) {
	u.mu.Lock()
	if u.m == nil {
		u.m = map[string]int32{}
	}
	u.m[sub]++
	u.mu.Unlock()
}

// Remove uncounts a connection of sub.
func (u *Users) Remove(sub string) {
	u.mu.Lock()
	if n := u.m[sub]; n <= 1 {
		delete(u.m, sub)
	} else {
		u.m[sub] = n - 1
	}
	u.mu.Unlock()
}

// Len returns the number of distinct users connected.
func (u *Users) Len() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return int64(len(u.m))
}
