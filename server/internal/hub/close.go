package hub

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"wspush/server/internal/metrics"
	"wspush/server/wire"
)

// Reason is why the server closes a client: the close frame's code and
// text, and the label the close is counted under in the metrics. The
// values below are the only ones; they are built here so that a code, a
// text and a label cannot be mixed up at a call site.
type Reason struct {
	code  uint16
	text  string
	label string
}

// Code returns the close frame's status code.
func (r Reason) Code() uint16 { return r.code }

// Text returns the close frame's reason text.
func (r Reason) Text() string { return r.text }

// Label returns the metrics label the close is counted under.
func (r Reason) Label() string { return r.label }

// The reasons the server closes a client for.
var (
	CloseIdle      = Reason{wire.CloseGoingAway, "idle timeout", metrics.ClosedIdle}
	CloseSlow      = Reason{wire.CloseSlowConsumer, "slow consumer", metrics.ClosedSlow}
	CloseExpired   = Reason{wire.ClosePolicy, "token expired", metrics.ClosedExpired}
	CloseShutdown  = Reason{wire.CloseGoingAway, "server shutting down", metrics.ClosedShutdown}
	CloseRateLimit = Reason{wire.ClosePolicy, "rate limit", metrics.ClosedRateLimit}
	CloseBadInput  = Reason{wire.ClosePolicy, "too many bad messages", metrics.ClosedBadInput}
	// CloseBadCloseText and CloseBadCloseCode answer a client's invalid
	// close frame.
	CloseBadCloseText = Reason{wire.CloseInvalidPayload, "close reason is not UTF-8", metrics.ClosedProtocol}
	CloseBadCloseCode = Reason{wire.CloseProtocolError, "close code 1015 may not be sent", metrics.ClosedProtocol}
)

// The reasons the socket layer closes a client for by itself (nbio sends
// its own close frame, if any): give them to Client.SetCloseReason, which
// counts the close under their label. CloseSlow is also one of them (nbio's
// write buffer overflowed).
var (
	CloseTimeout  = Reason{label: metrics.ClosedTimeout} // a read or write deadline passed
	CloseTooBig   = Reason{wire.CloseTooBig, "message too big", metrics.ClosedTooBig}
	CloseProtocol = Reason{wire.CloseProtocolError, "protocol error", metrics.ClosedProtocol}

	closeWriteError = Reason{label: metrics.ClosedWriteError} // see writeFailure
)

// Violation returns the reason for failing a connection over an RFC 6455
// violation the socket layer found (see package frameguard): its code and
// text as given, counted as too_big (1009), rate_limit (1008) or protocol.
func Violation(code uint16, text string) Reason {
	label := metrics.ClosedProtocol
	switch code {
	case wire.CloseTooBig:
		label = metrics.ClosedTooBig
	case wire.ClosePolicy:
		label = metrics.ClosedRateLimit
	}
	return Reason{code, text, label}
}

// Disconnect returns the reason for closing a client on the application's
// request (the server API's disconnect): code is 1008 (policy) or an
// application code 4000–4999, text at most 123 bytes of UTF-8; counted as
// "admin".
func Disconnect(code uint16, text string) (Reason, error) {
	if code != wire.ClosePolicy && (code < 4000 || code > 4999) {
		return Reason{}, fmt.Errorf("hub: close code %d: want 1008 or 4000-4999", code)
	}
	if len(text) > 123 || !utf8.ValidString(text) {
		return Reason{}, errors.New("hub: close reason must be at most 123 bytes of UTF-8")
	}
	return Reason{code, text, metrics.ClosedAdmin}, nil
}

// CloseLabel returns the label c's close is counted under: the reason
// recorded for it, ClosedByClient if none.
func (c *Client) CloseLabel() string {
	if r := c.reason.Load(); r != nil {
		return *r
	}
	return metrics.ClosedByClient
}
