package auth

import "wspush/server/internal/tally"

// Users counts connections per authenticated user (the token's sub), so
// that stats can report distinct users. It holds one entry per user with a
// live connection; it is safe for concurrent use.
type Users struct{ t tally.Tally[string] }

// Add counts a connection of sub.
func (u *Users) Add(sub string) { u.t.Inc(sub, 0) }

// Remove uncounts a connection of sub.
func (u *Users) Remove(sub string) { u.t.Dec(sub) }

// Len returns the number of distinct users connected.
func (u *Users) Len() int64 { return int64(u.t.Keys()) }
