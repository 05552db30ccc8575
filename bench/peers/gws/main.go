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
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"

	"wspush/bench/peers/contract"
)

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
}

func (h *handler) OnOpen(socket *gws.Conn) {
	start := time.Now()
	id := "c" + strconv.FormatUint(h.nextID.Add(1), 36)
	stop := make(chan struct{})
	socket.Session().Store(keyID, id)
	socket.Session().Store(keyStop, stop)
	welcome, _ := json.Marshal(contract.Welcome{Type: "welcome", ID: id, IntervalMS: h.interval.Milliseconds(), Text: contract.WelcomeText})
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
		msg, _ := json.Marshal(contract.Tick{Type: "tick", Seq: seq, Due: due.UnixNano()})
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
	var m contract.Client
	if message.Opcode != gws.OpcodeText || json.Unmarshal(message.Bytes(), &m) != nil || m.Type != "ping" || len(m.ID) == 0 {
		return
	}
	pong, _ := json.Marshal(contract.Pong{Type: "pong", ID: m.ID})
	_ = socket.WriteMessage(gws.OpcodeText, pong)
}

// broadcast sends payload to every connection and returns how many it was
// queued for.
func (h *handler) Broadcast(payload []byte) int {
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

func main() {
	if err := run(contract.Flags("peer-gws")); err != nil {
		fmt.Fprintln(os.Stderr, "peer-gws:", err)
		os.Exit(1)
	}
}

func run(c contract.Config) error {
	h := &handler{conns: gws.NewConcurrentMap[string, *gws.Conn](), interval: c.Interval}
	upgrader := gws.NewUpgrader(h, &gws.ServerOption{
		Recovery:           gws.Recovery,
		ReadMaxPayloadSize: 64 << 10,
	})
	return contract.Serve(c, func(w http.ResponseWriter, r *http.Request) {
		socket, err := upgrader.Upgrade(w, r)
		if err != nil {
			return
		}
		go socket.ReadLoop()
	}, h)
}

// Len returns the number of connected clients.
func (h *handler) Len() int { return h.conns.Len() }

// CloseAll closes every client with 1001.
func (h *handler) CloseAll() {
	h.conns.Range(func(_ string, socket *gws.Conn) bool {
		_ = socket.WriteClose(1001, []byte("server shutting down"))
		return true
	})
}
