package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// TestSoak runs clients that churn and resume, publishers on the publish
// API, a few clients that never read, and a restart of the server half way
// through, for 60 s (WSPUSH_SOAK_DURATION overrides; -short skips it).
// Within one server lifetime a resuming client must lose nothing; across
// the restart every loss must be signalled with history_gone. At the end
// goroutines and heap must be back to what an idle server had.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	dur := 60 * time.Second
	if v := os.Getenv("WSPUSH_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 5*time.Second {
			t.Fatalf("WSPUSH_SOAK_DURATION=%q: want a duration of at least 5s", v)
		}
		dur = d
	}
	const (
		resumers   = 40
		publishers = 2
		slowPerRun = 3
	)
	topics := []string{"soak.a", "soak.b", "soak.c", "soak.d"}

	sk := &soak{t: t, topics: topics, maxSeq: make([]map[string]uint64, 2)}
	sk.maxSeq[0], sk.maxSeq[1] = map[string]uint64{}, map[string]uint64{}
	sk.start("127.0.0.1:0", "127.0.0.1:0")
	t.Cleanup(func() {
		if n := sk.node.Load(); n != nil {
			n.shutdown(sk.cfg)
		}
	})
	baseG, baseHeap := settle()
	t.Logf("idle server: %d goroutines, heap %.1f MiB", baseG, mib(baseHeap))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < publishers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); sk.publish(stop) }()
	}
	for i := 0; i < resumers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sk.resume(i, stop, []string{topics[i%len(topics)], topics[(i+1)%len(topics)]})
		}()
	}
	slow := sk.slowClients(slowPerRun)

	restartAt := time.After(dur / 2)
	end := time.After(dur)
	<-restartAt
	sk.restart()
	slow = append(slow, sk.slowClients(slowPerRun)...)
	<-end
	close(stop)
	wg.Wait()
	for _, c := range slow {
		c.Close()
	}
	sk.http.CloseIdleConnections()

	n := sk.node.Load()
	eventually(t, 10*time.Second, "all clients gone from the hub", func() bool { return n.hub.Len() == 0 })
	// Topic history is kept, by design, for -history-ttl after the last
	// publish; let that time pass for the sweeper, then nothing else may be
	// left.
	if swept := n.bus.Sweep(time.Now().Add(sk.cfg.Bus.HistoryTTL + time.Second)); swept != len(topics) {
		t.Errorf("swept %d idle topics, want %d", swept, len(topics))
	}
	var g int
	var heap uint64
	deadline := time.Now().Add(15 * time.Second)
	for {
		g, heap = settle()
		if g <= baseG+2 && heap <= baseHeap+heapMargin(baseHeap) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("not back to baseline: %d goroutines (idle server had %d), heap %.1f MiB (had %.1f)",
				g, baseG, mib(heap), mib(baseHeap))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Logf("soak %v: %d connections (%d slow), %d published (%d batches shed with 503), %d received, %d resumes",
		dur, sk.conns.Load(), 2*slowPerRun, sk.published.Load(), sk.shed.Load(), sk.received.Load(), sk.resumes.Load())
	t.Logf("losses within a lifetime: %d gaps, %d duplicates, %d gone; across the restart: %d resumes signalled history_gone (%d messages), %d silent",
		sk.gaps.Load(), sk.dups.Load(), sk.goneSameEpoch.Load(), sk.signalled.Load(), sk.signalledMsgs.Load(), sk.silent.Load())
	t.Logf("memory: idle %d goroutines / %.1f MiB heap; after %d goroutines / %.1f MiB heap", baseG, mib(baseHeap), g, mib(heap))
	for _, e := range sk.errs() {
		t.Error(e)
	}
	switch {
	case sk.gaps.Load() != 0 || sk.dups.Load() != 0 || sk.goneSameEpoch.Load() != 0:
		t.Errorf("messages lost or repeated within a server lifetime")
	case sk.silent.Load() != 0:
		t.Errorf("%d resumes across the restart lost messages without history_gone", sk.silent.Load())
	case sk.signalled.Load() == 0:
		t.Errorf("no resume crossed the restart: the restart was not exercised")
	case sk.received.Load() == 0 || sk.resumes.Load() == 0:
		t.Errorf("nothing was received or resumed")
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// heapMargin is how far the heap may stay above the idle server's: the
// topics' histories (4 × 2000 messages of ~400 bytes, ~3 MiB) and pools
// (nbio's buffers, sync.Pools) stay after the load.
func heapMargin(base uint64) uint64 { return max(8<<20, base/2) }

// settle collects garbage and returns the goroutine count and live heap.
func settle() (int, uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

type soak struct {
	t      *testing.T
	topics []string
	cfg    Config
	node   atomic.Pointer[node]
	ws     atomic.Pointer[string]
	admin  atomic.Pointer[string]
	life   atomic.Int32
	http   http.Client

	mu     sync.Mutex
	maxSeq []map[string]uint64 // per lifetime: the last seq published per topic
	errors []string

	conns, published, shed, received, resumes atomic.Int64
	gaps, dups, goneSameEpoch                 atomic.Int64
	signalled, signalledMsgs, silent          atomic.Int64
}

func (sk *soak) fail(format string, args ...any) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if len(sk.errors) < 20 {
		sk.errors = append(sk.errors, fmt.Sprintf(format, args...))
	}
}

func (sk *soak) errs() []string {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return sk.errors
}

func (sk *soak) start(addr, adminAddr string) {
	sk.t.Helper()
	args := []string{"-addr", addr, "-admin-addr", adminAddr, "-push-interval", "500ms",
		"-history-size", "2000", "-max-write-buffer", "64KiB", "-max-publish-bytes", "4KiB", "-drain-rate", "100000",
		"-max-msg-rate", "0", "-accept-rate", "0", "-max-conns-per-ip", "0"}
	cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		sk.t.Fatal(err)
	}
	cfg.ShutdownTimeout = 3 * time.Second
	n, err := start(cfg)
	if err != nil {
		sk.t.Fatal(err)
	}
	sk.cfg = cfg
	ws, admin := "ws://"+n.gw.Addr().String()+"/ws", "http://"+n.admin.Addr().String()
	sk.ws.Store(&ws)
	sk.admin.Store(&admin)
	sk.node.Store(n)
}

// restart stops the server with its shutdown (clients get 1001) and starts
// a new one on the same ports; topic epochs change.
func (sk *soak) restart() {
	n := sk.node.Load()
	addr, adminAddr := n.gw.Addr().String(), n.admin.Addr().String()
	n.shutdown(sk.cfg)
	sk.life.Add(1)
	sk.start(addr, adminAddr)
}

// publish posts a batch (one message per topic) every 10 ms until stop,
// retrying while the server restarts.
func (sk *soak) publish(stop <-chan struct{}) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var body bytes.Buffer
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		body.Reset()
		body.WriteString(`{"messages":[`)
		for i, tp := range sk.topics {
			if i > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"topic":%q,"data":{"k":%d,"pad":"%s"}}`, tp, k, strings.Repeat("x", 100))
		}
		body.WriteString(`]}`)
		life := sk.life.Load()
		resp, err := sk.http.Post(*sk.admin.Load()+"/v1/publish/batch", "application/json", &body)
		if err != nil {
			continue // restarting
		}
		var br struct {
			Results []struct {
				Topic string `json:"topic"`
				Seq   uint64 `json:"seq"`
			} `json:"results"`
		}
		err = json.NewDecoder(resp.Body).Decode(&br)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			if resp.StatusCode != http.StatusServiceUnavailable {
				sk.fail("publish: HTTP %d %v", resp.StatusCode, err)
			}
			sk.shed.Add(1)
			continue
		}
		sk.published.Add(int64(len(br.Results)))
		sk.mu.Lock()
		for _, r := range br.Results {
			sk.maxSeq[life][r.Topic] = max(sk.maxSeq[life][r.Topic], r.Seq)
		}
		sk.mu.Unlock()
	}
}

// position is where a resuming client is in a topic.
type position struct {
	epoch string
	next  uint64 // the seq expected next; 0 before the first subscription
	life  int32
}

// resume is one client that connects, subscribes (resuming where it left
// off), reads for a while, leaves and comes back, until stop.
func (sk *soak) resume(id int, stop <-chan struct{}, topics []string) {
	pos := map[string]*position{}
	for _, tp := range topics {
		pos[tp] = &position{}
	}
	rng := rand.New(rand.NewPCG(uint64(id), 42))
	for {
		select {
		case <-stop:
			return
		default:
		}
		c, _, err := websocket.DefaultDialer.Dial(*sk.ws.Load(), nil)
		if err != nil {
			time.Sleep(20 * time.Millisecond) // restarting: poll
			continue
		}
		sk.conns.Add(1)
		sk.session(c, pos, topics, stop, time.Duration(200+rng.IntN(1300))*time.Millisecond)
		c.Close()
	}
}

// session runs one connection for up to d.
func (sk *soak) session(c *websocket.Conn, pos map[string]*position, topics []string, stop <-chan struct{}, d time.Duration) {
	for i, tp := range topics {
		p := pos[tp]
		sub := fmt.Sprintf(`{"type":"sub","topic":%q,"id":%d}`, tp, i)
		if p.next > 0 {
			sub = fmt.Sprintf(`{"type":"sub","topic":%q,"id":%d,"since":%d,"epoch":%q}`, tp, i, p.next-1, p.epoch)
		}
		if c.WriteMessage(websocket.TextMessage, []byte(sub)) != nil {
			return
		}
	}
	life := sk.life.Load()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		select {
		case <-stop:
			return
		default:
		}
		_ = c.SetReadDeadline(end)
		_, b, err := c.ReadMessage()
		if err != nil {
			return // the time is up, or the server is going away
		}
		var m wire.ServerMsg
		if err := wire.ParseServer(b, &m); err != nil {
			sk.fail("bad server frame %q: %v", b, err)
			return
		}
		switch m.Type {
		case wire.TypeSubscribed:
			p := pos[m.Topic]
			if p == nil {
				sk.fail("subscribed to %q?", m.Topic)
				return
			}
			sk.subscribed(p, &m, life)
		case wire.TypeMsg:
			p := pos[m.Topic]
			if p == nil || p.next == 0 {
				sk.fail("msg %s before subscribed", b)
				return
			}
			switch {
			case m.Seq > p.next:
				sk.gaps.Add(1)
				sk.fail("topic %s: got seq %d, want %d (%d lost)", m.Topic, m.Seq, p.next, m.Seq-p.next)
			case m.Seq < p.next:
				sk.dups.Add(1)
				sk.fail("topic %s: got seq %d again (want %d)", m.Topic, m.Seq, p.next)
			}
			p.next = m.Seq + 1
			sk.received.Add(1)
		case wire.TypeError:
			sk.fail("server error: %s", b)
		}
	}
}

// subscribed checks a subscription's answer against where the client was.
func (sk *soak) subscribed(p *position, m *wire.ServerMsg, life int32) {
	if p.next == 0 { // first subscription
		p.epoch, p.next, p.life = m.Epoch, m.Seq+1, life
		return
	}
	sk.resumes.Add(1)
	since := p.next - 1
	switch {
	case m.Epoch == p.epoch && !m.HistoryGone:
		// The replay of (since, m.Seq] follows: p.next stays.
	case m.Epoch == p.epoch:
		sk.goneSameEpoch.Add(1)
		sk.fail("topic %s: history_gone within one lifetime (since %d, last %d)", m.Topic, since, m.Seq)
		p.next = m.Seq + 1
	case m.HistoryGone:
		sk.signalled.Add(1)
		sk.mu.Lock()
		if last := sk.maxSeq[p.life][m.Topic]; last > since {
			sk.signalledMsgs.Add(int64(last - since))
		}
		sk.mu.Unlock()
		p.epoch, p.next, p.life = m.Epoch, m.Seq+1, life
	default:
		sk.silent.Add(1)
		sk.fail("topic %s: epoch changed from %s to %s without history_gone", m.Topic, p.epoch, m.Epoch)
		p.epoch, p.next, p.life = m.Epoch, m.Seq+1, life
	}
}

// slowClients connects n clients with tiny socket buffers that subscribe
// to every topic and never read.
func (sk *soak) slowClients(n int) []*websocket.Conn {
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	var out []*websocket.Conn
	for i := 0; i < n; i++ {
		c, _, err := d.Dial(*sk.ws.Load(), nil)
		if err != nil {
			sk.fail("slow client: %v", err)
			continue
		}
		sk.conns.Add(1)
		for _, tp := range sk.topics {
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"sub","topic":"`+tp+`"}`))
		}
		out = append(out, c)
	}
	return out
}
