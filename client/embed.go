// Package client holds the JavaScript client of wspush (wspush.js, an ES
// module, with its npm package files next to it) and serves it: the gateway
// mounts Handler at GET /wspush.js on the WebSocket listener. The bytes and
// the ETag are computed once at start; Handler is safe for concurrent use
// and holds no mutable state.
package client

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

//go:embed wspush.js
var script []byte

// Script returns the module's source. The slice is shared: do not modify it.
func Script() []byte { return script }

// ETag is the module's strong entity tag: a quoted SHA-256 prefix of its bytes.
var ETag = func() string {
	sum := sha256.Sum256(script)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// MaxAge is how long browsers and proxies may reuse the module without
// asking again (in seconds); after that a revalidation costs a 304.
const MaxAge = 300

// Handler serves the module: text/javascript, an ETag, Cache-Control with
// MaxAge, 304 Not Modified for a matching If-None-Match, and CORS open to
// every origin so that pages on other origins can import it (module
// scripts are fetched in CORS mode).
func Handler() http.Handler {
	cache := "public, max-age=" + strconv.Itoa(MaxAge)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("ETag", ETag)
		h.Set("Cache-Control", cache)
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("X-Content-Type-Options", "nosniff")
		if matches(r.Header.Get("If-None-Match"), ETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(script)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(script)
	})
}

// matches reports whether an If-None-Match list names tag (or is "*").
// Weak comparison, as RFC 9110 §13.1.2 asks for If-None-Match.
func matches(list, tag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == tag || t == "*" {
			return true
		}
	}
	return false
}
