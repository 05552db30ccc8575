package main

import (
	"testing"
	"time"

	"wspush/server/wire"
)

// TestJWTExpiryWithNothingPeriodic: with ticks, pings and the idle timeout
// off the wheel walks its clients only while one has a token expiry
// (hub.Hub.expiryOnly); a client whose token expires is still closed with
// 1008 "token expired" within the 1 s visit period, and one without a
// token stays.
func TestJWTExpiryWithNothingPeriodic(t *testing.T) {
	s := startServer(t, "-jwt-secret", testSecret, "-push-interval", "0", "-ping-interval", "0", "-idle-timeout", "0")
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second) // JWT exp has 1 s resolution
	if time.Until(exp) < 800*time.Millisecond {
		exp = exp.Add(time.Second)
	}
	c, status := dialAuth(t, s.ws, hsToken(t, tokenOpts{sub: "ann", exp: exp}), nil)
	if status != 0 {
		t.Fatalf("HTTP %d", status)
	}
	welcomed(t, c)
	code, reason := closeCode(t, c, 5*time.Second)
	closedAt := time.Now()
	if code != int(wire.ClosePolicy) || reason != "token expired" {
		t.Fatalf("closed with %d %q, want 1008 \"token expired\"", code, reason)
	}
	if early := exp.Sub(closedAt); early > 50*time.Millisecond {
		t.Fatalf("closed %v before the token expired", early)
	}
	if late := closedAt.Sub(exp); late > 2*time.Second {
		t.Fatalf("closed %v after the token expired (visit period 1 s)", late)
	}
	eventually(t, 5*time.Second, "closed counted", func() bool { return statNum(t, s, "closed", "token_expired") == 1 })
}
