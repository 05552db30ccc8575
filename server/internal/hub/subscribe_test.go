package hub

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"wspush/server/internal/bus"
)

// A subscription reaches the hub only through its bus.Local, and only for
// a registered client of that hub: anything else is refused and leaves the
// topic without a subscriber.
func TestSubscriptionOfAStrangerIsRefused(t *testing.T) {
	cfg := Config{PushInterval: Disabled, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1}
	h, other := newHub(t, cfg), newHub(t, cfg)
	bs := bus.New(bus.Config{}, h.Local())
	foreign, _ := connect(other, false)
	unregistered := h.NewClient(&fakeConn{})
	for name, c := range map[string]*Client{"another hub's client": foreign, "an unregistered client": unregistered} {
		if err := bs.Subscribe(bus.Subscription{Subscriber: c, Topic: "t"}); err == nil {
			t.Fatalf("%s subscribed", name)
		}
		if c.Subs() != 0 {
			t.Fatalf("%s has %d subscriptions", name, c.Subs())
		}
	}
	if ti, _ := bs.Topic("t"); ti.Subscribers != 0 {
		t.Fatalf("%d subscribers after refused subscriptions", ti.Subscribers)
	}
	if _, ok := h.fans.Load(mustTopic(t, bs, "t")); ok {
		t.Fatal("a refused subscription left a fan-out entry")
	}
}

// Ending a stream subscription moves the shard's last record into its
// place; the others keep receiving, the ended one does not.
func TestStreamUnsubscribeKeepsTheOthers(t *testing.T) {
	h := newHub(t, Config{PushInterval: Disabled, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1})
	bs := bus.New(bus.Config{}, h.Local())
	now := time.Now()
	var conns []*fakeConn
	var clients []*Client
	for i := 0; i < 4; i++ {
		c, f := connect(h, false)
		if err := bs.Subscribe(bus.Subscription{Subscriber: c, Topic: "feed", Quiet: true}); err != nil {
			t.Fatal(err)
		}
		clients, conns = append(clients, c), append(conns, f)
	}
	steps(h, now, now, time.Millisecond)
	// End the first (the last record moves into its place), then the one
	// that moved.
	for _, i := range []int{0, 3} {
		if err := bs.Unsubscribe(bus.Subscription{Subscriber: clients[i], Topic: "feed", Quiet: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bs.Publish("feed", []byte(`"x"`)); err != nil {
		t.Fatal(err)
	}
	steps(h, now, now, time.Millisecond)
	for i, f := range conns {
		frames, _ := f.snapshot()
		got := 0
		for _, fr := range frames {
			if strings.Contains(string(fr), `"msg"`) {
				got++
			}
		}
		if want := map[bool]int{true: 1, false: 0}[i == 1 || i == 2]; got != want {
			t.Fatalf("client %d got %d messages, want %d", i, got, want)
		}
	}
	if ti, _ := bs.Topic("feed"); ti.Subscribers != 2 {
		t.Fatalf("%d subscribers, want 2", ti.Subscribers)
	}
	for _, r := range h.shards[0].streams[mustTopic(t, bs, "feed")] {
		if r.c != clients[1] && r.c != clients[2] {
			t.Fatalf("client %s still in the topic's list", r.c.ID())
		}
	}
}

func mustTopic(t *testing.T, bs *bus.Bus, name string) *bus.Topic {
	t.Helper()
	m, err := bs.Publish(name, []byte(`0`))
	if err != nil {
		t.Fatal(err)
	}
	return m.Topic
}

// A client's subscription list may change from several goroutines at once
// (one topic lock each) and be read from any: none is lost, and a second
// subscription to the same topic is refused.
func TestClientSubscriptionsFromManyGoroutines(t *testing.T) {
	h := newHub(t, Config{PushInterval: Disabled, PingInterval: Disabled, IdleTimeout: Disabled, Shards: 1})
	bs := bus.New(bus.Config{}, h.Local())
	c, _ := connect(h, false)
	const n = 32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := "t" + strconv.Itoa(i)
			if err := bs.Subscribe(bus.Subscription{Subscriber: c, Topic: topic, Quiet: true}); err != nil {
				t.Error(err)
			}
			_ = c.Subscribed(topic) // a read racing the others' writes
		}()
	}
	wg.Wait()
	if c.Subs() != n {
		t.Fatalf("%d subscriptions recorded, want %d", c.Subs(), n)
	}
	if err := bs.Subscribe(bus.Subscription{Subscriber: c, Topic: "t0", Quiet: true}); err == nil {
		t.Fatal("a second subscription to t0 was accepted")
	}
	if ti, _ := bs.Topic("t0"); ti.Subscribers != 1 || c.Subs() != n {
		t.Fatalf("after a refused repeat: %d subscribers of t0, %d subscriptions", ti.Subscribers, c.Subs())
	}
	for i := 0; i < n; i += 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := bs.Unsubscribe(bus.Subscription{Subscriber: c, Topic: "t" + strconv.Itoa(i), Quiet: true}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if c.Subs() != n/2 || c.Subscribed("t0") || !c.Subscribed("t1") {
		t.Fatalf("after ending the even ones: %d subscriptions, t0 %v, t1 %v", c.Subs(), c.Subscribed("t0"), c.Subscribed("t1"))
	}
}
