package bclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestSummarize(t *testing.T) {
	var lats []float64
	for i := 1; i <= 100; i++ {
		lats = append(lats, float64(i))
	}
	s := Summarize(lats, 102)
	if s.P50 != 50 || s.P99 != 99 || s.Max != 100 || s.Missing != 2 || s.N != 100 {
		t.Fatalf("%+v", s)
	}
	if z := Summarize(nil, 3); z.Missing != 3 || z.Max != 0 {
		t.Fatalf("%+v", z)
	}
}

// fakeServer welcomes every WebSocket client and, on each POST to
// /v1/broadcast, writes one msg frame to all of them.
func fakeServer(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	var conns []*websocket.Conn
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome"}`))
		conns = append(conns, ws)
	})
	mux.HandleFunc("/v1/broadcast", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		for _, ws := range conns {
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"msg","data":1}`))
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(func() {
		s.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, ws := range conns {
			_ = ws.Close()
		}
	})
	return s
}

func TestRunMeasuresEveryBroadcast(t *testing.T) {
	s := fakeServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{URL: "ws" + strings.TrimPrefix(s.URL, "http") + "/ws", Admin: s.URL, Conns: 5, Count: 2,
		Dialers: 2, Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns != 5 || res.Connected != 5 || res.DialErrors != 0 || len(res.Broadcasts) != 2 {
		t.Fatalf("%+v", res)
	}
	for k, b := range res.Broadcasts {
		if b.N != 5 || b.Missing != 0 || b.PostMS <= 0 {
			t.Fatalf("broadcast %d: %+v", k, b)
		}
	}
	if res.All.N != 10 || res.All.Missing != 0 {
		t.Fatalf("all: %+v", res.All)
	}
}

func TestRunCountsDialErrorsAndFailedPosts(t *testing.T) {
	s := fakeServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{URL: "ws" + strings.TrimPrefix(s.URL, "http") + "/nows", Admin: s.URL + "/nothing", Conns: 3,
		Count: 1, Dialers: 3, Wait: time.Second})
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") || res.DialErrors != 3 || res.Connected != 0 {
		t.Fatalf("err %v, result %+v", err, res)
	}
}
