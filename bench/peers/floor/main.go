// Command floor is the wspush benchmark peer that shows the least this
// machine allows: no WebSocket library and no net package on the WebSocket
// port. One shard per core runs its own SO_REUSEPORT listener and epoll
// instance (golang.org/x/sys/unix), does a minimal HTTP upgrade handshake,
// and pushes ticks from a slot wheel whose length is the push interval
// (slots of -resolution, 10ms by default like wspush's wheel): a connection
// sits in one slot for life, and its tick is its seq digits patched into a
// template plus the slot's shared `,"due":…}` suffix, sent with one write
// syscall. New connections take slots from a van der Corput sequence, which
// spreads phases evenly. A broadcast is encoded once and written to every fd
// by the shards that own them. Only the admin port uses net/http. The
// behaviour contract is in ../README.md.
//
//	peer-floor -addr 127.0.0.1:9000 -admin-addr 127.0.0.1:9001 -push-interval 5s
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const welcomeText = "Welcome to the server!"

// clock is the timing shared by all shards: slot abs (counted from epoch)
// is due at epoch + (abs/slots)*interval + (abs%slots)*slotDur.
type clock struct {
	epoch     time.Time // monotonic origin
	epochUnix int64     // epoch in Unix nanoseconds
	interval  time.Duration
	slots     int64
	slotDur   time.Duration
}

func newClock(interval, resolution time.Duration) clock {
	slots := int64(interval / resolution)
	slots = max(1, min(slots, 1<<16))
	now := time.Now()
	return clock{epoch: now, epochUnix: now.UnixNano(), interval: interval, slots: slots, slotDur: interval / time.Duration(slots)}
}

// offset is when slot abs is due, from the epoch.
func (c *clock) offset(abs int64) time.Duration {
	return time.Duration(abs/c.slots)*c.interval + time.Duration(abs%c.slots)*c.slotDur
}

// current is the last slot that is due at elapsed (from the epoch).
func (c *clock) current(elapsed time.Duration) int64 {
	cycle, rem := int64(elapsed/c.interval), elapsed%c.interval
	return cycle*c.slots + min(int64(rem/c.slotDur), c.slots-1)
}

// server is what the shards share.
type server struct {
	clock
	shards   []*shard
	nextID   atomic.Uint64 // connection ids
	nextSlot atomic.Uint32 // van der Corput index for phases
	bcastSeq atomic.Uint64
	bcastMu  sync.Mutex // one broadcast at a time keeps seq order on the wire
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "WebSocket listen address (WebSocket at /ws)")
	adminAddr := flag.String("admin-addr", "127.0.0.1:9001", "admin listen address: POST /v1/broadcast, GET /healthz")
	interval := flag.Duration("push-interval", 5*time.Second, "period of each connection's tick")
	resolution := flag.Duration("resolution", 10*time.Millisecond, "slot width of the push wheel: ticks due within one slot go out together")
	shards := flag.Int("shards", 0, "event-loop shards; 0 = one per core")
	flag.Parse()
	if *interval < time.Millisecond || *resolution < time.Microsecond {
		fmt.Fprintln(os.Stderr, "peer-floor: -push-interval must be at least 1ms and -resolution at least 1µs")
		os.Exit(2)
	}
	if *shards <= 0 {
		*shards = runtime.GOMAXPROCS(0)
	}
	if err := run(*addr, *adminAddr, newClock(*interval, *resolution), *shards); err != nil {
		fmt.Fprintln(os.Stderr, "peer-floor:", err)
		os.Exit(1)
	}
}

func run(addr, adminAddr string, clk clock, nShards int) error {
	srv := &server{clock: clk}
	sa, err := resolve(addr)
	if err != nil {
		return err
	}
	for i := range nShards {
		lnfd, bound, err := listen(sa)
		if err != nil {
			srv.closeShards()
			return err
		}
		sa = bound // later shards bind the port the first one got
		sh, err := newShard(srv, lnfd)
		if err != nil {
			srv.closeShards()
			return fmt.Errorf("shard %d: %w", i, err)
		}
		srv.shards = append(srv.shards, sh)
	}
	adminLn, err := net.Listen("tcp", adminAddr)
	if err != nil {
		srv.closeShards()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/broadcast", srv.handleBroadcast)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		n := int64(0)
		for _, sh := range srv.shards {
			n += sh.count.Load()
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "connections": n})
	})
	adminSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1+nShards)
	go func() { errc <- adminSrv.Serve(adminLn) }()
	var wg sync.WaitGroup
	for _, sh := range srv.shards {
		wg.Go(func() {
			if err := sh.loop(); err != nil {
				errc <- err
			}
		})
	}
	fmt.Fprintf(os.Stderr, "listening ws=%s admin=%s\n", sockaddrString(sa), adminLn.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err = <-errc:
	}
	_ = adminSrv.Close()
	for _, sh := range srv.shards {
		sh.post(command{stop: true})
	}
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *server) closeShards() {
	for _, sh := range s.shards {
		sh.closeAll()
	}
}

// handleBroadcast is POST /v1/broadcast: {"data":<JSON>} goes to every
// client as a msg frame, encoded once.
func (s *server) handleBroadcast(w http.ResponseWriter, r *http.Request) {
	ts := time.Now().UnixNano()
	var body struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || len(body.Data) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"data":<JSON>}`})
		return
	}
	var data bytes.Buffer
	if err := json.Compact(&data, body.Data); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.bcastMu.Lock()
	p := append([]byte(`{"type":"msg","topic":"","seq":`), strconv.AppendUint(nil, s.bcastSeq.Add(1), 10)...)
	p = append(p, `,"ts":`...)
	p = strconv.AppendInt(p, ts, 10)
	p = append(p, `,"data":`...)
	p = append(p, data.Bytes()...)
	p = append(p, '}')
	frame := appendFrame(nil, opText, p)
	done := make(chan int, len(s.shards))
	for _, sh := range s.shards {
		sh.post(command{frame: frame, done: done})
	}
	n := 0
	for range s.shards {
		n += <-done
	}
	s.bcastMu.Unlock()
	writeJSON(w, http.StatusOK, map[string]int{"delivered": n})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
