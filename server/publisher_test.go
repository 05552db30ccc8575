package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// published is what the publisher was told: topic and seq of value n.
type published struct {
	topic string
	seq   uint64
}

// publisher posts {"n":k} to the topics in turn at 200 a second and
// records every acknowledged one.
type publisher struct {
	mu    sync.Mutex
	acked map[int]published
	order map[string][]int // acked values of each topic, in publish order
	stop  chan struct{}
	done  chan struct{}
}

func startPublisher(admin string) *publisher {
	p := &publisher{acked: map[int]published{}, order: map[string][]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 2 * time.Second}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for k := 0; ; k++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			topic := restartTopics[k%len(restartTopics)]
			body := fmt.Sprintf(`{"topic":%q,"data":{"n":%d}}`, topic, k)
			resp, err := client.Post("http://"+admin+"/v1/publish", "application/json", strings.NewReader(body))
			if err != nil {
				continue // the server is down: not acknowledged
			}
			var ans struct {
				Topic string `json:"topic"`
				Seq   uint64 `json:"seq"`
			}
			err = json.NewDecoder(resp.Body).Decode(&ans)
			_ = resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				continue
			}
			p.mu.Lock()
			p.acked[k] = published{ans.Topic, ans.Seq}
			p.order[topic] = append(p.order[topic], k)
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// waitAcked waits until n more publishes are acknowledged (200 a second
// on an idle machine; the deadline allows for a loaded one).
func (p *publisher) waitAcked(t *testing.T, n int) {
	t.Helper()
	want := p.count() + n
	deadline := time.Now().Add(30 * time.Second)
	for p.count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d publishes acknowledged, want %d", p.count(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
