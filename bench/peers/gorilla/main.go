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
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"wspush/bench/peers/contract"
)

const (
	writeWait      = 10 * time.Second // longest a single write may take
	maxMessageSize = 64 << 10         // largest client message
	sendBuffer     = 256              // queued pongs and broadcasts per client
)

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
func (h *hub) Broadcast(msg []byte) int {
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

func (h *hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// CloseAll sends every client a 1001 close frame and closes its connection.
func (h *hub) CloseAll() {
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
	welcome, _ := json.Marshal(contract.Welcome{Type: "welcome", ID: id, IntervalMS: s.interval.Milliseconds(), Text: contract.WelcomeText})
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
		var m contract.Client
		if kind != websocket.TextMessage || json.Unmarshal(data, &m) != nil || m.Type != "ping" || len(m.ID) == 0 {
			continue
		}
		pong, _ := json.Marshal(contract.Pong{Type: "pong", ID: m.ID})
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
			msg, _ = json.Marshal(contract.Tick{Type: "tick", Seq: seq, Due: due.UnixNano()})
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			return
		}
	}
}

func main() {
	if err := run(contract.Flags("peer-gorilla")); err != nil {
		fmt.Fprintln(os.Stderr, "peer-gorilla:", err)
		os.Exit(1)
	}
}

func run(c contract.Config) error {
	s := &server{
		hub:      hub{clients: make(map[*client]struct{})},
		interval: c.Interval,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
			CheckOrigin:     func(*http.Request) bool { return true },
		},
	}
	return contract.Serve(c, s.serveWS, &s.hub)
}
