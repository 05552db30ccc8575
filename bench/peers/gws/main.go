// Command gws is the wspush benchmark peer written with github.com/lxzan/gws
// the way its README and push example do it: an event handler (OnOpen,
// OnMessage, OnClose), net/http's server with gws.Upgrader and a ReadLoop
// goroutine per connection, the connections kept in a gws.ConcurrentMap, and
// broadcasts sent through a gws.Broadcaster (one frame encoded once, queued
// to each connection's async write queue). The periodic push is a
// time.Ticker per connection, started in OnOpen and stopped in OnClose. The
// behaviour contract is in ../README.md.
//
//	peer-gws -addr 127.0.0.1:9000 -admin-addr 127.0.0.1:9001 -push-interval 5s
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lxzan/gws"
)

const welcomeText = "Welcome to the server!"

type welcomeMsg struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	IntervalMS int64  `json:"interval_ms"`
	Text       string `json:"text"`
}

type tickMsg struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
	Due  int64  `json:"due"`
}

type clientMsg struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"`
}

type pongMsg struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"`
}

type broadcastMsg struct {
	Type  string          `json:"type"`
	Topic string          `json:"topic"`
	Seq   uint64          `json:"seq"`
	TS    int64           `json:"ts"`
	Data  json.RawMessage `json:"data"`
}

// Session keys.
const (
	keyID   = "id"
	keyStop = "stop"
)

func load[T any](s gws.SessionStorage, key string) (v T) {
	if x, ok := s.Load(key); ok {
		v, _ = x.(T)
	}
	return v
}

// handler is the gws event handler; it also keeps the connection set.
type handler struct {
	gws.BuiltinEventHandler
	conns    *gws.ConcurrentMap[string, *gws.Conn]
	interval time.Duration
	nextID   atomic.Uint64
	bcastSeq atomic.Uint64
}

func (h *handler) OnOpen(socket *gws.Conn) {
	start := time.Now()
	id := "c" + strconv.FormatUint(h.nextID.Add(1), 36)
	stop := make(chan struct{})
	socket.Session().Store(keyID, id)
	socket.Session().Store(keyStop, stop)
	welcome, _ := json.Marshal(welcomeMsg{Type: "welcome", ID: id, IntervalMS: h.interval.Milliseconds(), Text: welcomeText})
	if err := socket.WriteMessage(gws.OpcodeText, welcome); err != nil {
		return
	}
	h.conns.Store(id, socket)
	go h.push(socket, start, stop)
}

// push sends the connection's ticks until stop is closed.
func (h *handler) push(socket *gws.Conn, start time.Time, stop <-chan struct{}) {
	ticker := time.NewTicker(h.interval)
	defer ticker.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
		due := start.Add(time.Duration(seq) * h.interval)
		msg, _ := json.Marshal(tickMsg{Type: "tick", Seq: seq, Due: due.UnixNano()})
		if err := socket.WriteMessage(gws.OpcodeText, msg); err != nil {
			return // gws closes the connection; OnClose follows
		}
	}
}

func (h *handler) OnClose(socket *gws.Conn, err error) {
	h.conns.Delete(load[string](socket.Session(), keyID))
	if stop := load[chan struct{}](socket.Session(), keyStop); stop != nil {
		close(stop)
	}
}

func (h *handler) OnPing(socket *gws.Conn, payload []byte) {
	_ = socket.WritePong(payload)
}

func (h *handler) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	var m clientMsg
	if message.Opcode != gws.OpcodeText || json.Unmarshal(message.Bytes(), &m) != nil || m.Type != "ping" || len(m.ID) == 0 {
		return
	}
	pong, _ := json.Marshal(pongMsg{Type: "pong", ID: m.ID})
	_ = socket.WriteMessage(gws.OpcodeText, pong)
}

// broadcast sends payload to every connection and returns how many it was
// queued for.
func (h *handler) broadcast(payload []byte) int {
	b := gws.NewBroadcaster(gws.OpcodeText, payload)
	defer func() { _ = b.Close() }()
	n := 0
	h.conns.Range(func(_ string, socket *gws.Conn) bool {
		if b.Broadcast(socket) == nil {
			n++
		}
		return true
	})
	return n
}

// handleBroadcast is POST /v1/broadcast: {"data":<JSON>} goes to every
// client as a msg frame.
func (h *handler) handleBroadcast(w http.ResponseWriter, r *http.Request) {
	ts := time.Now().UnixNano()
	var body struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || len(body.Data) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"data":<JSON>}`})
		return
	}
	msg, err := json.Marshal(broadcastMsg{Type: "msg", Topic: "", Seq: h.bcastSeq.Add(1), TS: ts, Data: body.Data})
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"delivered": h.broadcast(msg)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "WebSocket listen address (WebSocket at /ws)")
	adminAddr := flag.String("admin-addr", "127.0.0.1:9001", "admin listen address: POST /v1/broadcast, GET /healthz")
	interval := flag.Duration("push-interval", 5*time.Second, "period of each connection's tick")
	flag.Parse()
	if *interval <= 0 {
		fmt.Fprintln(os.Stderr, "peer-gws: -push-interval must be positive")
		os.Exit(2)
	}
	if err := run(*addr, *adminAddr, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "peer-gws:", err)
		os.Exit(1)
	}
}

func run(addr, adminAddr string, interval time.Duration) error {
	h := &handler{conns: gws.NewConcurrentMap[string, *gws.Conn](), interval: interval}
	upgrader := gws.NewUpgrader(h, &gws.ServerOption{
		Recovery:           gws.Recovery,
		ReadMaxPayloadSize: 64 << 10,
	})
	wsLn, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", adminAddr)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		socket, err := upgrader.Upgrade(w, r)
		if err != nil {
			return
		}
		go socket.ReadLoop()
	})
	admin := http.NewServeMux()
	admin.HandleFunc("POST /v1/broadcast", h.handleBroadcast)
	admin.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "connections": h.conns.Len()})
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
	_ = wsSrv.Close() // stops accepting; upgraded connections are gws's
	_ = adminSrv.Close()
	h.conns.Range(func(_ string, socket *gws.Conn) bool {
		_ = socket.WriteClose(1001, []byte("server shutting down"))
		return true
	})
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
