package gateway

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"

	"wspush/server/wire"
)

// This file is what /sse answers at its edge, besides the stream itself
// (sse.go): transient refusals as streams, and CORS.
//
// Refusals. A browser's EventSource reconnects by itself after a stream
// ends, but gives up for good on any answer that is not a 200 event
// stream. So a request that asks for one (its Accept has
// text/event-stream, as EventSource's always does) and is refused for a
// reason that passes — the drain, the accept rate, -max-conns, the per-IP
// cap — gets a 200 event stream that says so and ends: a retry field
// drawn from the drain's window (SSERetryMin + SSERetryWindow), then the
// close event an established stream gets (hub's closeSSE): code 1001
// "server shutting down" for the drain, 1013 for the accept rate and
// -max-conns, 4429 for the per-IP cap, with the refusal's text as reason.
// Refusals that do not pass (400, 401, 403, 404, 405) keep their HTTP
// status: there the browser should stop. A request without that Accept
// (curl, a fetch that did not ask) gets the HTTP statuses.
//
// CORS. The WebSocket origin policy (access.checkOrigin) decides: a
// request whose Origin it allows gets that Origin back in
// Access-Control-Allow-Origin, with Access-Control-Allow-Credentials: true
// (so that an EventSource opened withCredentials works: wspush
// authenticates by token, never by cookie, and a WebSocket carries the
// page's cookies anyway) and Vary: Origin; a refused Origin gets 403 and
// no CORS header, a request without Origin none.

// Close codes of refusal streams (a WebSocket client would see the HTTP
// status; wspush's JS client maps these to "overload").
const (
	closeTryAgainLater uint16 = 1013 // RFC 6455: try again later
	closePerIP         uint16 = 4429 // 4000 + 429, as hooks' refusals are 4000 + status
)

// wantsStream reports whether r asks for an event stream.
func wantsStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "text/event-stream") {
			return true
		}
	}
	return false
}

// corsOrigin is the Origin to allow in r's answer: r's Origin, which the
// caller has checked, unless it is absent or not fit for a header line.
func corsOrigin(r *http.Request) string {
	o := r.Header.Get("Origin")
	if len(o) > 256 {
		return ""
	}
	for i := 0; i < len(o); i++ {
		if o[i] < 0x21 || o[i] > 0x7e {
			return ""
		}
	}
	return strings.Clone(o)
}

// setCORS puts the CORS fields for origin into h.
func setCORS(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
}

const (
	corsACAO = "Access-Control-Allow-Origin: "
	corsRest = "\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
)

// corsLen is the length of appendCORS's lines for origin.
func corsLen(origin string) int {
	if origin == "" {
		return 0
	}
	return len(corsACAO) + len(origin) + len(corsRest)
}

// appendCORS appends the CORS header lines for origin ("": none) to a raw
// response head.
func appendCORS(b []byte, origin string) []byte {
	if origin == "" {
		return b
	}
	b = append(b, corsACAO...)
	b = append(b, origin...)
	return append(b, corsRest...)
}

// heldAnswer holds the answer admit or reserve writes for a request that
// asked for an event stream, so that a transient refusal can go out as a
// stream instead (send). Its header is the real one.
type heldAnswer struct {
	w      http.ResponseWriter
	r      *http.Request
	status int
	body   []byte
}

func (h *heldAnswer) Header() http.Header { return h.w.Header() }

func (h *heldAnswer) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *heldAnswer) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	h.body = append(h.body, b...)
	return len(b), nil
}

// send writes the held answer: a 503 or 429 as a refusal stream, anything
// else as it was. A nil h (nothing held) does nothing.
func (h *heldAnswer) send() {
	if h == nil || h.status == 0 {
		return
	}
	reason := strings.TrimSpace(string(h.body))
	switch h.status {
	case http.StatusServiceUnavailable:
		sseRefuseStream(h.w, h.r, closeTryAgainLater, reason)
	case http.StatusTooManyRequests:
		sseRefuseStream(h.w, h.r, closePerIP, reason)
	default:
		h.w.WriteHeader(h.status)
		_, _ = h.w.Write(h.body)
	}
}

// sseRefuseStream answers r with a stream of a retry field and a close
// event of code and reason, and ends it: nbio closes the connection after
// the answer (r.Close), where EventSource reconnects.
func sseRefuseStream(w http.ResponseWriter, r *http.Request, code uint16, reason string) {
	r.Close = true
	h := w.Header()
	h.Del("X-Content-Type-Options")
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(refusalEvents(code, reason))
}

// refusalEvents is a refusal stream's body.
func refusalEvents(code uint16, reason string) []byte {
	b := append([]byte(nil), "retry: "...)
	b = strconv.AppendInt(b, int64(SSERetryMin+rand.IntN(SSERetryWindow)), 10)
	b = append(b, "\n\n"...)
	p := append([]byte(nil), `{"type":"close","code":`...)
	p = strconv.AppendUint(p, uint64(code), 10)
	p = append(p, `,"reason":`...)
	p = wire.AppendString(p, reason)
	p = append(p, '}')
	return wire.AppendEvent(b, "close", p)
}
