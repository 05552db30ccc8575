package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// The headers of a POST. The signature is "v1=" and the hex HMAC-SHA256,
// keyed with the secret, of the timestamp header's value, a ".", and the
// body as sent: so a receiver that checks the timestamp is recent cannot
// be fed an old request again (a replay), and the body cannot be changed.
const (
	HeaderTimestamp = "Wspush-Timestamp" // Unix seconds when the POST was signed
	HeaderSignature = "Wspush-Signature" // v1=<hex>
)

// Sign returns the signature header's value for body sent at ts (the
// timestamp header's value).
func Sign(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook: bad signature")
	ErrStale        = errors.New("webhook: timestamp outside the tolerance")
)

// Verify checks a received POST: sig and ts are its signature and
// timestamp headers, body its body as received; the timestamp must be
// within tolerance of now. It is what a Go receiver should do
// (docs/backend.md has the same for Node).
func Verify(secret, ts, sig string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrStale
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	want := Sign(secret, ts, body)
	if !strings.HasPrefix(sig, "v1=") || !hmac.Equal([]byte(sig), []byte(want)) {
		return ErrBadSignature
	}
	return nil
}
