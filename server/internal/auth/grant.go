package auth

import (
	"errors"
	"time"
)

// MaxSubjectBytes bounds a user id given by the connect hook.
const MaxSubjectBytes = 256

// NewGrant returns the grant of a user the application's connect hook
// accepted (docs/backend.md): sub is the user id, topics and pub are
// patterns in the same language as a token's topics and pub claims (absent:
// nothing), expiry the zero time for none.
func NewGrant(sub string, expiry time.Time, topics, pub []string) (*Grant, error) {
	if sub == "" || len(sub) > MaxSubjectBytes {
		return nil, errors.New("auth: user must be 1 to 256 bytes")
	}
	g := &Grant{Sub: sub, Expiry: expiry}
	var err error
	if g.topics, err = compileAll(topics); err != nil {
		return nil, err
	}
	if g.pub, err = compileAll(pub); err != nil {
		return nil, err
	}
	return g, nil
}
