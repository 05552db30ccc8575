package hub

// closedRefused labels a connection the connect hook refused. Such a
// client was never registered, so its close is not counted among
// wspush_connections_closed_total; the hook's own metrics count it.
const closedRefused = "connect_refused"

// Refusal returns the reason for closing a client the application's
// connect hook refused: code is 4000 plus the backend's HTTP-like status
// (4401, 4403, …), text its message (RFC 6455 allows 123 bytes; longer
// text is cut on a UTF-8 boundary).
func Refusal(code uint16, text string) Reason {
	if len(text) > 123 {
		n := 123
		for n > 0 && text[n]&0xC0 == 0x80 {
			n--
		}
		text = text[:n]
	}
	return Reason{code, text, closedRefused}
}
