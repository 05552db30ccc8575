// Package demo serves the demo page at "/" on the WebSocket port: a
// self-contained HTML page that connects to /ws, shows the welcome and each
// push live, and sends messages typed into a box. It holds no state.
package demo

import (
	_ "embed"
	"net/http"
)

//go:embed index.html
var page []byte

// Handler returns the page's handler.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src data:; connect-src 'self' ws: wss:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
		_, _ = w.Write(page)
	})
}
