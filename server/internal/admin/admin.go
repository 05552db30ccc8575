// Package admin is wspush's admin listener: health, Prometheus metrics,
// JSON stats and pprof, served by the standard library's net/http so that
// the WebSocket port carries nothing but clients. Other packages add their
// routes (the publish API) with Handle.
//
// With a token (SetToken), every route but /healthz needs the header
// "Authorization: Bearer <token>"; the comparison is constant-time.
//
// Concurrency: handlers run on net/http's goroutines and only read shared
// state through the callbacks they are given, which must be safe for
// concurrent use. SetToken and Handle are called before Run.
//
// Lifecycle, as for every wspush component: Listen acquires the socket;
// Run serves until its context is done, then shuts the server down and
// returns. Run with a context already done only closes the socket.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"wspush/server/internal/metrics"
)

// DefaultAddr is the admin listener's default address: loopback only.
const DefaultAddr = "127.0.0.1:8081"

// Server is the admin HTTP server.
type Server struct {
	mux     *http.ServeMux
	srv     *http.Server
	ln      net.Listener
	m       *metrics.Metrics
	conns   func() int64
	healthy func() error
	token   *[sha256.Size]byte // SHA-256 of the admin token; nil: no token
}

// New returns an admin server. conns reports the connection count; healthy
// returns nil while the server is fit to take clients.
func New(m *metrics.Metrics, conns func() int64, healthy func() error) *Server {
	s := &Server{mux: http.NewServeMux(), m: m, conns: conns, healthy: healthy}
	s.mux.HandleFunc("GET /healthz", s.health)
	s.mux.Handle("GET /metrics", m.Handler())
	s.mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, m.Snapshot(conns()))
	})
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	return s
}

// SetToken requires token as a bearer token on every route but /healthz;
// "" requires none.
func (s *Server) SetToken(token string) {
	if token == "" {
		s.token = nil
		return
	}
	sum := sha256.Sum256([]byte(token))
	s.token = &sum
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.token != nil && r.URL.Path != "/healthz" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wspush-admin"`)
		WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin token required (Authorization: Bearer <token>)"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized compares the request's bearer token with the admin token in
// constant time (over SHA-256 digests, so the length does not leak either).
func (s *Server) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

// IsLoopback reports whether a listen address binds loopback only: an IP
// in 127.0.0.0/8 or ::1, or "localhost". An empty host (every interface) or
// any other name is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Handle adds a route.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	if err := s.healthy(); err != nil {
		WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "reason": err.Error()})
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "connections": s.conns()})
}

// Listen opens the admin socket.
func (s *Server) Listen(addr string) error {
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.ln = ln
	return nil
}

// Addr returns the listening address (after Listen).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// ShutdownTimeout bounds how long Run waits for requests in flight once
// it is stopping.
const ShutdownTimeout = 2 * time.Second

// Run serves on the socket Listen opened until ctx is done, then shuts the
// server down, waiting up to ShutdownTimeout for requests in flight. If the
// listener fails first, Run shuts down the same way and returns the error.
func (s *Server) Run(ctx context.Context) error {
	if ctx.Err() != nil { // stopped before it started: release the socket
		if err := s.ln.Close(); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		return nil
	}
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(s.ln) }()
	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	serr := s.srv.Shutdown(sctx)
	if err == nil {
		err = <-served // ErrServerClosed, at once
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("admin: shutdown: %w", serr)
	}
	return nil
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
