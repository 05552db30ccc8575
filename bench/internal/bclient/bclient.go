// Package bclient measures how long one broadcast takes to reach every
// client: it opens Conns WebSocket connections (gorilla/websocket client,
// one reading goroutine each), waits for every welcome, then POSTs
// /v1/broadcast Count times, one at a time, and records for each
// connection when the k-th "msg" frame arrived, relative to the moment the
// POST was sent. It runs in its own process (wsbench __bcast), pinned to
// the load CPU, so its cost never lands on the server's core.
//
// Run is three steps: dial (a bounded pool of dialers), read (one reading
// goroutine per connection) and measure (the broadcasts, one at a time).
//
// Concurrency: each reading goroutine writes only its own slots of the
// arrival table (atomics), which measure polls. All goroutines end before
// Run returns.
package bclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Config is one measurement.
type Config struct {
	URL     string        // ws://127.0.0.1:9000/ws
	Admin   string        // http://127.0.0.1:9500
	Conns   int           // clients
	Count   int           // broadcasts
	Dialers int           // concurrent dials
	Wait    time.Duration // longest wait for one broadcast to arrive everywhere
}

// Stats are latencies in ms over the clients of one broadcast (or all).
type Stats struct {
	N       int     `json:"n"`
	Missing int     `json:"missing"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	PostMS  float64 `json:"post_ms"` // round trip of the POST itself
}

// Result is the outcome.
type Result struct {
	Conns      int     `json:"conns"`
	Connected  int     `json:"connected"`
	DialErrors int     `json:"dial_errors"`
	Broadcasts []Stats `json:"broadcasts"`
	All        Stats   `json:"all"`
}

// Run performs the measurement; it stops by itself (dial phase bounded by
// ctx, each broadcast by Wait).
func Run(ctx context.Context, c Config) (*Result, error) {
	res := &Result{Conns: c.Conns}
	conns, dialErrs := dial(ctx, c)
	res.DialErrors = dialErrs
	arrive := make([][]atomic.Int64, c.Count)
	for k := range arrive {
		arrive[k] = make([]atomic.Int64, c.Conns)
	}
	connected, stop := read(conns, arrive)
	defer stop()
	res.Connected = connected
	time.Sleep(time.Second)
	err := measure(ctx, c, conns, arrive, res)
	return res, err
}

// dial opens c.Conns connections, at most c.Dialers at a time, and reads
// each one's welcome. conns[i] is nil where that failed; dialErrs counts
// those.
func dial(ctx context.Context, c Config) (conns []*websocket.Conn, dialErrs int) {
	conns = make([]*websocket.Conn, c.Conns)
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 256}
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, c.Dialers))
	var dialErr atomic.Int64
	for i := 0; i < c.Conns && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ws, _, err := d.DialContext(ctx, c.URL, nil)
			if err == nil {
				ws.SetReadLimit(1 << 16)
				_, _, err = ws.ReadMessage() // the welcome
			}
			<-sem
			if err != nil {
				dialErr.Add(1)
				if ws != nil {
					_ = ws.Close()
				}
				return
			}
			conns[i] = ws
		}(i)
	}
	wg.Wait()
	return conns, int(dialErr.Load())
}

// read starts one reader per open connection: the i-th stores in
// arrive[k][i] when its k-th "msg" frame came. It returns how many readers
// run and stop, which closes every connection and waits for the readers.
func read(conns []*websocket.Conn, arrive [][]atomic.Int64) (readers int, stop func()) {
	var wg sync.WaitGroup
	for i, ws := range conns {
		if ws == nil {
			continue
		}
		readers++
		wg.Add(1)
		go func(i int, ws *websocket.Conn) {
			defer wg.Done()
			k := 0
			for k < len(arrive) {
				_, p, err := ws.ReadMessage()
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				if bytes.Contains(p, []byte(`"type":"msg"`)) {
					arrive[k][i].Store(now)
					k++
				}
			}
		}(i, ws)
	}
	return readers, func() {
		for _, ws := range conns {
			if ws != nil {
				_ = ws.Close()
			}
		}
		wg.Wait()
	}
}

// measure POSTs the c.Count broadcasts one at a time and records in res how
// long each took to reach the res.Connected readers.
func measure(ctx context.Context, c Config, conns []*websocket.Conn, arrive [][]atomic.Int64, res *Result) error {
	var all []float64
	for k := 0; k < c.Count && ctx.Err() == nil; k++ {
		t0 := time.Now()
		if err := post(c.Admin, k); err != nil {
			return err
		}
		took := time.Since(t0)
		lats := arrivals(conns, arrive[k], t0, res.Connected, t0.Add(c.Wait))
		s := Summarize(lats, res.Connected)
		s.PostMS = float64(took) / 1e6
		res.Broadcasts = append(res.Broadcasts, s)
		all = append(all, lats...)
		time.Sleep(300 * time.Millisecond)
	}
	res.All = Summarize(all, res.Connected*len(res.Broadcasts))
	return nil
}

// post sends the k-th broadcast through the admin API.
func post(admin string, k int) error {
	body := `{"data":{"bench":` + strconv.Itoa(k) + `}}`
	resp, err := http.Post(admin+"/v1/broadcast", "application/json", bytes.NewBufferString(body))
	if err != nil {
		return fmt.Errorf("wsbench: broadcast %d: %w", k, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("wsbench: broadcast %d: HTTP %d", k, resp.StatusCode)
	}
	return nil
}

// arrivals polls one broadcast's arrival slots until want have arrived or
// the deadline passes, and returns the latencies (ms after t0) seen.
func arrivals(conns []*websocket.Conn, slots []atomic.Int64, t0 time.Time, want int, deadline time.Time) []float64 {
	var lats []float64
	for {
		lats = lats[:0]
		for i, ws := range conns {
			if ws == nil {
				continue
			}
			if v := slots[i].Load(); v != 0 {
				lats = append(lats, float64(v-t0.UnixNano())/1e6)
			}
		}
		if len(lats) == want || time.Now().After(deadline) {
			return lats
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Summarize computes the percentiles of lats (ms); want is how many
// arrivals were owed.
func Summarize(lats []float64, want int) Stats {
	s := Stats{N: len(lats), Missing: want - len(lats)}
	if len(lats) == 0 {
		return s
	}
	x := append([]float64(nil), lats...)
	sort.Float64s(x)
	q := func(p float64) float64 {
		i := int(p*float64(len(x))+0.5) - 1
		return x[min(max(i, 0), len(x)-1)]
	}
	s.P50, s.P99, s.Max = q(0.50), q(0.99), x[len(x)-1]
	return s
}
