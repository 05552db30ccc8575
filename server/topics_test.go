package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

func publish(t *testing.T, s *testServer, topic, data string) uint64 {
	t.Helper()
	code, body := post(t, s.admin+"/v1/publish", fmt.Sprintf(`{"topic":%q,"data":%s}`, topic, data))
	if code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	var r struct{ Seq uint64 }
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return r.Seq
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func subscribe(t *testing.T, c *websocket.Conn, req string) wire.ServerMsg {
	t.Helper()
	send(t, c, req)
	m := nextOf(t, c, wire.TypeSubscribed, 5*time.Second)
	return m
}

// msgSeq pulls topic and seq out of a msg frame without a full decode.
func msgSeq(b []byte) (topic string, seq uint64, ok bool) {
	if !bytes.HasPrefix(b, []byte(`{"type":"msg","topic":"`)) {
		return "", 0, false
	}
	rest := b[len(`{"type":"msg","topic":"`):]
	i := bytes.IndexByte(rest, '"')
	topic, rest = string(rest[:i]), rest[i:]
	rest = rest[len(`","seq":`):]
	j := bytes.IndexByte(rest, ',')
	n, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	return topic, n, err == nil
}

func TestThousandSubscribersGetEveryConcurrentPublishInOrder(t *testing.T) {
	s := startServer(t, "-push-interval", "0")
	const subs, pubs = 1000, 500
	conns := make([]*websocket.Conn, subs)
	for i := range conns {
		conns[i] = dial(t, s.ws)
		next(t, conns[i], 5*time.Second)
		send(t, conns[i], `{"type":"sub","topic":"scores"}`)
	}
	for _, c := range conns {
		if m := next(t, c, 5*time.Second); m.Type != wire.TypeSubscribed || m.Seq != 0 {
			t.Fatalf("subscribe: %+v", m)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, subs+10)
	for i, c := range conns {
		wg.Add(1)
		go func(i int, c *websocket.Conn) {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			for want := uint64(1); want <= pubs; want++ {
				_, b, err := c.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("subscriber %d after seq %d: %w", i, want-1, err)
					return
				}
				if topic, seq, ok := msgSeq(b); !ok || topic != "scores" || seq != want {
					errs <- fmt.Errorf("subscriber %d: got %s, want seq %d", i, b, want)
					return
				}
			}
		}(i, c)
	}
	// 10 publishers, 50 publishes each, at once.
	var pw sync.WaitGroup
	for p := 0; p < 10; p++ {
		pw.Add(1)
		go func(p int) {
			defer pw.Done()
			for i := 0; i < pubs/10; i++ {
				resp, err := http.Post(s.admin+"/v1/publish", "application/json",
					strings.NewReader(fmt.Sprintf(`{"topic":"scores","data":{"p":%d,"i":%d}}`, p, i)))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("publish: HTTP %d", resp.StatusCode)
				}
			}
		}(p)
	}
	pw.Wait()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	_, body := get(t, s.admin+"/v1/topics/scores")
	var ti struct {
		Subscribers int    `json:"subscribers"`
		LastSeq     uint64 `json:"last_seq"`
		HistoryLen  int    `json:"history_len"`
	}
	_ = json.Unmarshal([]byte(body), &ti)
	if ti.Subscribers != subs || ti.LastSeq != pubs || ti.HistoryLen != 100 {
		t.Fatalf("topic info %s", body)
	}
}

func TestResumeReplaysExactlyTheMissedWhilePublishing(t *testing.T) {
	s := startServer(t, "-push-interval", "0", "-history-size", "1000")
	stop := make(chan struct{})
	published := make(chan uint64, 1)
	go func() { // a steady publisher, racing with the resume
		var last uint64
		defer func() { published <- last }()
		for i := 0; i < 600; i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := http.Post(s.admin+"/v1/publish", "application/json", strings.NewReader(fmt.Sprintf(`{"topic":"feed","data":%d}`, i)))
			if err != nil {
				return
			}
			var r struct{ Seq uint64 }
			_ = json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			last = r.Seq
			time.Sleep(time.Millisecond)
		}
	}()
	defer close(stop)

	c := dial(t, s.ws)
	next(t, c, 2*time.Second)
	sub := subscribe(t, c, `{"type":"sub","topic":"feed"}`)
	epoch, have := sub.Epoch, sub.Seq
	// Read a few live messages, then drop the connection.
	for n := 0; n < 20; n++ {
		m := nextOf(t, c, wire.TypeMsg, 5*time.Second)
		if m.Seq != have+1 {
			t.Fatalf("live seq %d after %d", m.Seq, have)
		}
		have = m.Seq
	}
	c.Close()
	time.Sleep(50 * time.Millisecond) // messages go on without us

	c2 := dial(t, s.ws)
	next(t, c2, 2*time.Second)
	sub2 := subscribe(t, c2, fmt.Sprintf(`{"type":"sub","topic":"feed","since":%d,"epoch":%q,"id":"r"}`, have, epoch))
	if sub2.HistoryGone || sub2.Epoch != epoch || string(sub2.ID) != `"r"` || sub2.Seq <= have {
		t.Fatalf("resume: %+v (had %d)", sub2, have)
	}
	// Replay then live: every seq after have, once, in order.
	for have < sub2.Seq+100 {
		m := nextOf(t, c2, wire.TypeMsg, 5*time.Second)
		if m.Seq != have+1 {
			t.Fatalf("after resume: seq %d follows %d", m.Seq, have)
		}
		have = m.Seq
	}
}

func TestHistoryGone(t *testing.T) {
	s := startServer(t, "-push-interval", "0", "-history-size", "10")
	for i := 0; i < 30; i++ {
		publish(t, s, "news", strconv.Itoa(i))
	}
	c := dial(t, s.ws)
	next(t, c, 2*time.Second)
	cur := subscribe(t, c, `{"type":"sub","topic":"news"}`)
	if cur.Seq != 30 || cur.HistoryGone {
		t.Fatalf("plain subscribe: %+v", cur)
	}
	send(t, c, `{"type":"unsub","topic":"news"}`)
	nextOf(t, c, wire.TypeUnsubscribed, 2*time.Second)

	// since older than the 10-message history
	old := subscribe(t, c, fmt.Sprintf(`{"type":"sub","topic":"news","since":5,"epoch":%q}`, cur.Epoch))
	if !old.HistoryGone || old.Seq != 30 {
		t.Fatalf("since 5 of 30 with 10 kept: %+v", old)
	}
	send(t, c, `{"type":"unsub","topic":"news"}`)
	nextOf(t, c, wire.TypeUnsubscribed, 2*time.Second)

	// another epoch
	other := subscribe(t, c, `{"type":"sub","topic":"news","since":29,"epoch":"not-this-one"}`)
	if !other.HistoryGone {
		t.Fatalf("wrong epoch: %+v", other)
	}
	send(t, c, `{"type":"unsub","topic":"news"}`)
	nextOf(t, c, wire.TypeUnsubscribed, 2*time.Second)

	// covered: exactly the last five come back
	ok := subscribe(t, c, fmt.Sprintf(`{"type":"sub","topic":"news","since":25,"epoch":%q}`, cur.Epoch))
	if ok.HistoryGone {
		t.Fatalf("covered resume: %+v", ok)
	}
	for want := uint64(26); want <= 30; want++ {
		if m := next(t, c, 2*time.Second); m.Type != wire.TypeMsg || m.Seq != want || string(m.Data) != strconv.Itoa(int(want-1)) {
			t.Fatalf("replay: %+v, want seq %d", m, want)
		}
	}
	if m, err := tryNext(c, 200*time.Millisecond); err == nil {
		t.Fatalf("extra frame after the replay: %+v", m)
	}
}

func TestLatestModeSendsOnlyTheNewestValuePerTick(t *testing.T) {
	s := startServer(t, "-push-interval", "200ms")
	c := dial(t, s.ws)
	next(t, c, 2*time.Second)
	subscribe(t, c, `{"type":"sub","topic":"price","mode":"latest"}`)
	subscribe(t, c, `{"type":"sub","topic":"quiet","mode":"latest"}`)
	var last uint64
	go func() {
		for i := 1; i <= 100; i++ {
			resp, err := http.Post(s.admin+"/v1/publish", "application/json", strings.NewReader(fmt.Sprintf(`{"topic":"price","data":{"v":%d}}`, i)))
			if err == nil {
				resp.Body.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	ticksWithValue := 0
	for last < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("latest value stuck at seq %d", last)
		}
		m := next(t, c, 2*time.Second)
		if m.Type == wire.TypeMsg {
			t.Fatalf("a latest-mode subscriber got a msg frame: %+v", m)
		}
		if m.Type != wire.TypeTick {
			continue
		}
		if _, ok := m.Topics["quiet"]; ok {
			t.Fatalf("unchanged topic in a tick: %+v", m.Topics)
		}
		v, ok := m.Topics["price"]
		if !ok {
			continue
		}
		if v.Seq <= last || string(v.Data) != fmt.Sprintf(`{"v":%d}`, v.Seq) {
			t.Fatalf("tick carries %+v after seq %d", v, last)
		}
		last = v.Seq
		ticksWithValue++
	}
	// 100 publishes over ~0.5-1 s reached the client in a handful of ticks.
	if ticksWithValue > 10 {
		t.Fatalf("%d ticks carried values for 100 publishes: not conflated", ticksWithValue)
	}
	// Now nothing changes: ticks carry no topics.
	if m := nextOf(t, c, wire.TypeTick, 2*time.Second); len(m.Topics) != 0 {
		t.Fatalf("tick after the last change: %+v", m.Topics)
	}
	// A new latest subscriber gets the current value on its first tick.
	c2 := dial(t, s.ws)
	next(t, c2, 2*time.Second)
	subscribe(t, c2, `{"type":"sub","topic":"price","mode":"latest"}`)
	if m := nextOf(t, c2, wire.TypeTick, 2*time.Second); m.Topics["price"].Seq != 100 {
		t.Fatalf("first tick of a new subscriber: %+v", m.Topics)
	}
}

func TestUnsubStopsDeliveryAndBroadcastReachesEveryone(t *testing.T) {
	s := startServer(t, "-push-interval", "100ms")
	sub := dial(t, s.ws)
	next(t, sub, 2*time.Second)
	subscribe(t, sub, `{"type":"sub","topic":"a","id":1}`)
	publish(t, s, "a", `"one"`)
	if m := nextOf(t, sub, wire.TypeMsg, 2*time.Second); m.Seq != 1 {
		t.Fatalf("%+v", m)
	}
	send(t, sub, `{"type":"unsub","topic":"a","id":2}`)
	if m := nextOf(t, sub, wire.TypeUnsubscribed, 2*time.Second); string(m.ID) != "2" {
		t.Fatalf("%+v", m)
	}
	publish(t, s, "a", `"two"`)
	// A client with no subscription at all gets broadcasts.
	none := dial(t, s.ws)
	next(t, none, 2*time.Second)
	code, body := post(t, s.admin+"/v1/broadcast", `{"data":{"alert":"hi"}}`)
	if code != 200 {
		t.Fatalf("broadcast: %d %s", code, body)
	}
	for _, c := range []*websocket.Conn{none, sub} {
		m := nextOf(t, c, wire.TypeMsg, 2*time.Second)
		if m.Topic != wire.BroadcastTopic || m.Seq != 1 || string(m.Data) != `{"alert":"hi"}` {
			t.Fatalf("broadcast arrived as %+v", m) // sub must not see "two" first
		}
	}
	// Two more ticks pass with no msg for the unsubscribed topic.
	for i := 0; i < 2; i++ {
		if m := next(t, sub, 2*time.Second); m.Type != wire.TypeTick {
			t.Fatalf("after unsub: %+v", m)
		}
	}
}

func TestBadPublishBodiesChangeNothing(t *testing.T) {
	s := startServer(t, "-max-publish-bytes", "100")
	publish(t, s, "t", `1`)
	for _, c := range []struct {
		path, body string
		code       int
	}{
		{"/v1/publish", `{"topic":"t","data":`, 400},
		{"/v1/publish", `{"topic":"t","data":1,"extra":2}`, 400},
		{"/v1/publish", `{"data":1}`, 400},
		{"/v1/publish", `{"topic":"bad topic","data":1}`, 400},
		{"/v1/publish", `{"topic":"t"}`, 400},
		{"/v1/publish", `{"topic":"t","data":1} {"topic":"t","data":2}`, 400},
		{"/v1/publish", `{"topic":"t","data":"` + strings.Repeat("x", 200) + `"}`, 413},
		{"/v1/broadcast", `{"data":"` + strings.Repeat("x", 200) + `"}`, 413},
		{"/v1/publish", `{"topic":"t","data":"` + strings.Repeat("x", 5000) + `"}`, 413},
		{"/v1/publish", ``, 400},
		{"/v1/publish/batch", `{"messages":[{"topic":"t","data":2},{"topic":"t"}]}`, 400},
		{"/v1/publish/batch", `{"messages":[]}`, 400},
		{"/v1/broadcast", `{"data":}`, 400},
		{"/v1/broadcast", `{}`, 400},
	} {
		code, body := post(t, s.admin+c.path, c.body)
		if code != c.code || !strings.Contains(body, `"error"`) {
			t.Errorf("%s %.60s: %d %s, want %d with an error", c.path, c.body, code, body, c.code)
		}
	}
	resp, err := http.Post(s.admin+"/v1/publish", "text/plain", strings.NewReader(`{"topic":"t","data":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d", resp.StatusCode)
	}
	if code, body := get(t, s.admin+"/v1/topics/t"); code != 200 || !strings.Contains(body, `"last_seq": 1,`) {
		t.Fatalf("topic after bad requests: %d %s", code, body)
	}
	if code, _ := get(t, s.admin+"/v1/topics/nope"); code != 404 {
		t.Fatalf("unknown topic: %d", code)
	}
	// A good batch publishes all, in order.
	code, body := post(t, s.admin+"/v1/publish/batch", `{"messages":[{"topic":"t","data":2},{"topic":"u","data":3},{"topic":"t","data":4}]}`)
	if code != 200 || !strings.Contains(body, `"seq": 3`) {
		t.Fatalf("batch: %d %s", code, body)
	}
	if _, body := get(t, s.admin+"/v1/topics"); !strings.Contains(body, `"topic": "u"`) {
		t.Fatalf("topics: %s", body)
	}
}

func TestClientPublishAndSubscriptionLimits(t *testing.T) {
	s := startServer(t, "-client-publish", "-max-subs", "2", "-push-interval", "0")
	c := dial(t, s.ws)
	next(t, c, 2*time.Second)
	subscribe(t, c, `{"type":"sub","topic":"x"}`)
	subscribe(t, c, `{"type":"sub","topic":"y"}`)
	send(t, c, `{"type":"sub","topic":"z"}`)
	if m := nextOf(t, c, wire.TypeError, 2*time.Second); m.Code != wire.CodeLimit {
		t.Fatalf("third sub: %+v", m)
	}
	send(t, c, `{"type":"sub","topic":"x"}`)
	if m := nextOf(t, c, wire.TypeError, 2*time.Second); !strings.Contains(m.Reason, "already") {
		t.Fatalf("repeated sub: %+v", m)
	}
	send(t, c, `{"type":"unsub","topic":"q"}`)
	if m := nextOf(t, c, wire.TypeError, 2*time.Second); !strings.Contains(m.Reason, "not subscribed") {
		t.Fatalf("unsub of nothing: %+v", m)
	}
	send(t, c, `{"type":"pub","topic":"x","data":{"from":"client"},"id":9}`)
	got := map[string]bool{}
	for len(got) < 2 {
		m := next(t, c, 2*time.Second)
		got[m.Type] = true
		switch m.Type {
		case wire.TypePublished:
			if m.Seq != 1 || string(m.ID) != "9" {
				t.Fatalf("%+v", m)
			}
		case wire.TypeMsg:
			if m.Topic != "x" || string(m.Data) != `{"from":"client"}` {
				t.Fatalf("%+v", m)
			}
		default:
			t.Fatalf("unexpected %+v", m)
		}
	}
}

func TestCompressionNegotiatedPerClientAndDoneOnce(t *testing.T) {
	s := startServer(t, "-compression", "-push-interval", "0")
	big := `{"text":"` + strings.Repeat("all work and no play makes jack a dull boy ", 200) + `"}`
	d := websocket.Dialer{EnableCompression: true}
	var zipped []*websocket.Conn
	for i := 0; i < 10; i++ {
		c, resp, err := d.Dial(s.ws, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !strings.Contains(resp.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate") {
			t.Fatalf("no permessage-deflate in %v", resp.Header)
		}
		next(t, c, 2*time.Second)
		subscribe(t, c, `{"type":"sub","topic":"big"}`)
		zipped = append(zipped, c)
	}
	plain := dial(t, s.ws) // offers no compression
	next(t, plain, 2*time.Second)
	subscribe(t, plain, `{"type":"sub","topic":"big"}`)

	before := stats(t, s)["bytes_out"].(float64)
	publish(t, s, "big", big)
	for _, c := range append(zipped, plain) {
		if m := nextOf(t, c, wire.TypeMsg, 2*time.Second); string(m.Data) != big {
			t.Fatalf("data came back as %.80s…", m.Data)
		}
	}
	var sent float64
	eventually(t, 2*time.Second, "bytes counted", func() bool {
		sent = stats(t, s)["bytes_out"].(float64) - before
		return sent >= float64(len(big))
	})
	// One plain copy plus ten compressed ones: far less than eleven plain.
	if sent > float64(len(big))*2 {
		t.Fatalf("%v bytes out for 11 subscribers of a %d-byte message: not compressed", sent, len(big))
	}
}
