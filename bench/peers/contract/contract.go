// Package contract is what the Go benchmark peers share: the JSON messages
// of the behaviour contract (../README.md), the flags, and the admin
// listener with its broadcast entry point. Each peer keeps its own
// library-idiomatic WebSocket handling; only this plumbing is common.
//
// Concurrency: Serve runs the two HTTP servers on their own goroutines and
// returns after a signal (or a server failure) once both are closed; the
// Peer's methods are called from net/http's goroutines.
package contract

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// WelcomeText is the welcome message's text.
const WelcomeText = "Welcome to the server!"

// Welcome is the first frame.
type Welcome struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	IntervalMS int64  `json:"interval_ms"`
	Text       string `json:"text"`
}

// Tick is the periodic push.
type Tick struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
	Due  int64  `json:"due"`
}

// Client is a client frame (only ping is answered).
type Client struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"`
}

// Pong answers a ping.
type Pong struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"`
}

// Broadcast is a broadcast msg frame.
type Broadcast struct {
	Type  string          `json:"type"`
	Topic string          `json:"topic"`
	Seq   uint64          `json:"seq"`
	TS    int64           `json:"ts"`
	Data  json.RawMessage `json:"data"`
}

// Config is what the flags set.
type Config struct {
	Addr, AdminAddr string
	Interval        time.Duration
}

// Flags parses the peers' common flags; name prefixes errors. A bad value
// exits with status 2.
func Flags(name string) Config {
	var c Config
	flag.StringVar(&c.Addr, "addr", "127.0.0.1:9000", "WebSocket listen address (WebSocket at /ws)")
	flag.StringVar(&c.AdminAddr, "admin-addr", "127.0.0.1:9001", "admin listen address: POST /v1/broadcast, GET /healthz")
	flag.DurationVar(&c.Interval, "push-interval", 5*time.Second, "period of each connection's tick")
	flag.Parse()
	if c.Interval <= 0 {
		fmt.Fprintf(os.Stderr, "%s: -push-interval must be positive\n", name)
		os.Exit(2)
	}
	return c
}

// Peer is what the admin listener needs of a peer.
type Peer interface {
	// Broadcast writes msg to every client and returns how many it went to.
	Broadcast(msg []byte) int
	// Len returns the number of connected clients.
	Len() int
	// CloseAll closes every client (with 1001) on shutdown.
	CloseAll()
}

// Serve listens on c.Addr (ws, serving ws at GET /ws) and c.AdminAddr, prints
// the "listening" line, and runs until SIGTERM/SIGINT.
func Serve(c Config, ws http.HandlerFunc, p Peer) error {
	wsLn, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", c.AdminAddr)
	if err != nil {
		return err
	}
	var seq atomic.Uint64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", ws)
	admin := http.NewServeMux()
	admin.HandleFunc("POST /v1/broadcast", func(w http.ResponseWriter, r *http.Request) {
		ts := time.Now().UnixNano()
		var body struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || len(body.Data) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"data":<JSON>}`})
			return
		}
		msg, err := json.Marshal(Broadcast{Type: "msg", Topic: "", Seq: seq.Add(1), TS: ts, Data: body.Data})
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"delivered": p.Broadcast(msg)})
	})
	admin.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "connections": p.Len()})
	})
	wsSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	adminSrv := &http.Server{Handler: admin, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- wsSrv.Serve(wsLn) }()
	go func() { errc <- adminSrv.Serve(adminLn) }()
	fmt.Fprintf(os.Stderr, "listening ws=%s admin=%s\n", wsLn.Addr(), adminLn.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err = <-errc:
	}
	_ = wsSrv.Close() // stops accepting; upgraded connections are the peer's
	_ = adminSrv.Close()
	p.CloseAll()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
