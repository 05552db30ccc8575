package engine

import (
	"fmt"
	"strconv"
	"time"
)

// MaxRetryAfter caps a server's Retry-After: a longer wait is taken as
// this long.
const MaxRetryAfter = 60 * time.Second

// RejectedError is an upgrade the server refused with HTTP 503 (wspush:
// over -accept-rate or -max-conns, or draining) or 429 (over
// -max-conns-per-ip). errors.Is(err, ErrBadHandshake) holds for it.
type RejectedError struct {
	Status int // 503 or 429
	// RetryAfter is the server's Retry-After in seconds, capped at
	// MaxRetryAfter; 0 when absent, zero, or not a number of seconds
	// (the HTTP-date form is ignored).
	RetryAfter time.Duration
}

func (e *RejectedError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("engine: upgrade rejected with HTTP %d, retry after %s", e.Status, e.RetryAfter)
	}
	return fmt.Sprintf("engine: upgrade rejected with HTTP %d", e.Status)
}

// Unwrap makes a RejectedError match ErrBadHandshake.
func (e *RejectedError) Unwrap() error { return ErrBadHandshake }

// rejected builds the error for a 503/429 status code; headers are the
// response's header lines after the status line.
func rejected(code string, headers []byte) error {
	status, _ := strconv.Atoi(code)
	e := &RejectedError{Status: status}
	for len(headers) > 0 {
		var line []byte
		line, headers = cutLine(headers)
		if name, val, ok := cutColon(line); ok && equalFold(name, "retry-after") {
			e.RetryAfter = parseRetryAfter(val)
			break
		}
	}
	return e
}

// parseRetryAfter reads delay-seconds (RFC 9110 §10.2.3); anything else,
// e.g. an HTTP-date, gives 0. The result is capped at MaxRetryAfter.
func parseRetryAfter(v []byte) time.Duration {
	if len(v) == 0 {
		return 0
	}
	const limit = int64(MaxRetryAfter / time.Second)
	var s int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		s = min(s*10+int64(c-'0'), limit+1) // no overflow on long input
	}
	return min(time.Duration(s)*time.Second, MaxRetryAfter)
}
