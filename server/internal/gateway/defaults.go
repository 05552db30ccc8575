package gateway

import (
	"cmp"
	"fmt"
)

// withDefaults gives the fields of c left 0 their defaults, by wspush's one
// scheme (0 means the default). The admission limits, where a negative value
// means no limit, are resolved by newAccess and frameLimits.
func (c Config) withDefaults() (Config, error) {
	if c.MaxConns < 0 {
		return c, fmt.Errorf("gateway: max conns %d is negative", c.MaxConns)
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns()
	}
	c.Addr = cmp.Or(c.Addr, DefaultAddr)
	c.Welcome = cmp.Or(c.Welcome, DefaultWelcome)
	c.MaxMessageBytes = positiveOr(c.MaxMessageBytes, DefaultMaxMessageBytes)
	c.MaxBadMessages = positiveOr(c.MaxBadMessages, DefaultMaxBadMessages)
	c.MaxSubs = positiveOr(c.MaxSubs, DefaultMaxSubs)
	c.MaxHeaderBytes = positiveOr(c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	c.HandshakeTimeout = positiveOr(c.HandshakeTimeout, DefaultHandshakeTimeout)
	return c, nil
}

// positiveOr is v, or def when v is not positive.
func positiveOr[T ~int | ~int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
