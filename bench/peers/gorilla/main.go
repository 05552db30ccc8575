// Command gorilla is the wspush benchmark peer written with
// github.com/gorilla/websocket the way its chat example does it: per
// connection a read goroutine and a write goroutine, the writer owning the
// connection's writes and running a time.Ticker for the periodic push, and a
// hub (a mutex-guarded set) that broadcasts by queueing the same bytes to
// every client's send channel. The behaviour contract is in ../README.md.
//
//	peer-gorilla -addr 127.0.0.1:9000 -admin-addr 127.0.0.1:9001 -push-interval 5s
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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const (
	welcomeText    = "Welcome to the server!"
	writeWait      = 10 * time.Second // longest a single write may take
	maxMessageSize = 64 << 10         // largest client message
	sendBuffer     = 256              // queued pongs and broadcasts per client
)

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

// client is one WebSocket connection. Only writePump writes to conn (apart
// from the close frame on shutdown, which WriteControl allows).
type client struct {
	conn *websocket.Conn
	send chan []byte   // frames for writePump: pongs and broadcasts
	done chan struct{} // closed when readPump returns
}

// hub is the set of connected clients.
type hub struct {
	mu      sync.Mutex
	clients map[*client]struct{}
}

func (h *hub) add(c *client) {
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

// broadcast queues msg to every client and returns how many took it; a
// client whose send buffer is full misses it.
func (h *hub) broadcast(msg []byte) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for c := range h.clients {
		select {
		case c.send <- msg:
			n++
		default:
		}
	}
	return n
}

func (h *hub) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// closeAll sends every client a 1001 close frame and closes its connection.
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
	for c := range h.clients {
		_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		_ = c.conn.Close()
	}
}

type server struct {
	hub      hub
	interval time.Duration
	upgrader websocket.Upgrader
	nextID   atomic.Uint64
	bcastSeq atomic.Uint64
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error
	}
	start := time.Now()
	// Joining the hub before the welcome goes out means a client that has
	// its welcome gets every later broadcast; those queue in c.send until
	// writePump runs.
	c := &client{conn: conn, send: make(chan []byte, sendBuffer), done: make(chan struct{})}
	s.hub.add(c)
	id := "c" + strconv.FormatUint(s.nextID.Add(1), 36)
	welcome, _ := json.Marshal(welcomeMsg{Type: "welcome", ID: id, IntervalMS: s.interval.Milliseconds(), Text: welcomeText})
	_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
	if err := conn.WriteMessage(websocket.TextMessage, welcome); err != nil {
		s.hub.remove(c)
		_ = conn.Close()
		return
	}
	go s.writePump(c, start)
	s.readPump(c)
}

// readPump reads client messages until the connection fails, answering
// pings through the writer.
func (s *server) readPump(c *client) {
	defer func() {
		s.hub.remove(c)
		close(c.done)
		_ = c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	for {
		kind, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		var m clientMsg
		if kind != websocket.TextMessage || json.Unmarshal(data, &m) != nil || m.Type != "ping" || len(m.ID) == 0 {
			continue
		}
		pong, _ := json.Marshal(pongMsg{Type: "pong", ID: m.ID})
		select {
		case c.send <- pong:
		default: // the writer is hopelessly behind; drop the pong
		}
	}
}

// writePump owns the connection's writes: the periodic tick from its own
// ticker, and whatever arrives on c.send.
func (s *server) writePump(c *client, start time.Time) {
	ticker := time.NewTicker(s.interval)
	defer func() {
		ticker.Stop()
		_ = c.conn.Close()
	}()
	var seq uint64
	for {
		var msg []byte
		select {
		case <-c.done:
			return
		case msg = <-c.send:
		case <-ticker.C:
			seq++
			due := start.Add(time.Duration(seq) * s.interval)
			msg, _ = json.Marshal(tickMsg{Type: "tick", Seq: seq, Due: due.UnixNano()})
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			return
		}
	}
}

// handleBroadcast is POST /v1/broadcast: {"data":<JSON>} goes to every
// client as a msg frame.
func (s *server) handleBroadcast(w http.ResponseWriter, r *http.Request) {
	ts := time.Now().UnixNano()
	var body struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || len(body.Data) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"data":<JSON>}`})
		return
	}
	msg, err := json.Marshal(broadcastMsg{Type: "msg", Topic: "", Seq: s.bcastSeq.Add(1), TS: ts, Data: body.Data})
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"delivered": s.hub.broadcast(msg)})
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
		fmt.Fprintln(os.Stderr, "peer-gorilla: -push-interval must be positive")
		os.Exit(2)
	}
	if err := run(*addr, *adminAddr, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "peer-gorilla:", err)
		os.Exit(1)
	}
}

func run(addr, adminAddr string, interval time.Duration) error {
	s := &server{
		hub:      hub{clients: make(map[*client]struct{})},
		interval: interval,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
			CheckOrigin:     func(*http.Request) bool { return true },
		},
	}
	wsLn, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", adminAddr)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	admin := http.NewServeMux()
	admin.HandleFunc("POST /v1/broadcast", s.handleBroadcast)
	admin.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "connections": s.hub.len()})
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
	_ = wsSrv.Close() // stops accepting; upgraded connections are the hub's
	_ = adminSrv.Close()
	s.hub.closeAll()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
