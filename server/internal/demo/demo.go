// Package demo serves the demo page at "/" on the WebSocket port: an HTML
// page that imports the JavaScript client from /wspush.js (package client)
// and shows what its events say: the welcome, a countdown to the next tick
// and each push live, the connection's state and each reconnect attempt
// with its delay, topics subscribed (stream mode) and resumed after a
// reconnect (how many messages were replayed, or that the history is
// gone), the curl command that publishes to a topic through the admin
// listener, and the answers to messages typed into a box. The page has no
// connection or resume logic of its own.
//
// The page is rendered once, when Handler is called, with what it cannot
// learn over the WebSocket (the admin listener's address, whether the
// admin API needs a token; never the token itself). The handler holds no
// mutable state and is safe for concurrent use.
package demo

import (
	"bytes"
	_ "embed"
	"html"
	"net/http"
	"strconv"
)

//go:embed index.html
var page []byte

// Config is what the page shows of the server's configuration.
type Config struct {
	// AdminAddr is the admin listener's address as it listens (host:port;
	// an unspecified host is shown as the page's own host): the publish
	// API the curl command posts to. Empty shows the default
	// 127.0.0.1:8081.
	AdminAddr string
	// AdminToken reports whether the admin API needs a bearer token: the
	// curl command then sends $WSPUSH_ADMIN_TOKEN.
	AdminToken bool
}

// Handler returns the page's handler.
func Handler(cfg Config) http.Handler {
	body := bytes.Replace(page, []byte("{{ADMIN_ADDR}}"), []byte(html.EscapeString(cfg.AdminAddr)), 1)
	body = bytes.Replace(body, []byte("{{ADMIN_TOKEN}}"), []byte(strconv.FormatBool(cfg.AdminToken)), 1)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src data:; connect-src 'self' ws: wss:; style-src 'unsafe-inline'; script-src 'self' 'unsafe-inline'")
		_, _ = w.Write(body)
	})
}
