package frameguard

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// Handshake is the answer to an opening handshake that RFC 6455 §4.2
// refuses: an HTTP status, a reason for the body, and the headers that
// status requires.
type Handshake struct {
	Status int
	Reason string
}

// Refusals CheckHandshake returns.
var (
	HandshakeNotGet     = &Handshake{http.StatusMethodNotAllowed, "a WebSocket handshake is a GET request"}
	HandshakeOldHTTP    = &Handshake{http.StatusBadRequest, "a WebSocket handshake needs HTTP/1.1 or later"}
	HandshakeNoUpgrade  = &Handshake{http.StatusBadRequest, "not a WebSocket handshake: Connection: Upgrade and Upgrade: websocket are required"}
	HandshakeNoVersion  = &Handshake{http.StatusBadRequest, "missing Sec-WebSocket-Version"}
	HandshakeBadVersion = &Handshake{http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version; this server speaks 13"}
	HandshakeBadKey     = &Handshake{http.StatusBadRequest, "Sec-WebSocket-Key must be 16 bytes in base64"}
)

// CheckHandshake returns nil when r is a well-formed RFC 6455 opening
// handshake, and the refusal otherwise. Origin, subprotocols and
// extensions are left to the caller.
func CheckHandshake(r *http.Request) *Handshake {
	switch {
	case r.Method != http.MethodGet:
		return HandshakeNotGet
	case !r.ProtoAtLeast(1, 1):
		return HandshakeOldHTTP
	case !hasToken(r.Header["Connection"], "upgrade") || !hasToken(r.Header["Upgrade"], "websocket"):
		return HandshakeNoUpgrade
	}
	versions := r.Header["Sec-Websocket-Version"]
	if len(versions) == 0 {
		return HandshakeNoVersion
	}
	if !hasToken(versions, "13") {
		return HandshakeBadVersion
	}
	keys := r.Header["Sec-Websocket-Key"]
	if len(keys) != 1 || !validKey(keys[0]) {
		return HandshakeBadKey
	}
	return nil
}

// Write answers w with the refusal: 405 names the allowed method, and
// every refusal names the protocol version the server speaks.
func (h *Handshake) Write(w http.ResponseWriter) {
	w.Header().Set("Sec-WebSocket-Version", "13")
	if h.Status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodGet)
	}
	http.Error(w, h.Reason, h.Status)
}

// validKey reports whether k is base64 of 16 bytes (24 characters).
func validKey(k string) bool {
	k = strings.TrimSpace(k)
	if len(k) != 24 {
		return false
	}
	var b [18]byte
	n, err := base64.StdEncoding.Decode(b[:], []byte(k))
	return err == nil && n == 16
}

// hasToken reports whether a comma-separated header value holds token,
// case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
