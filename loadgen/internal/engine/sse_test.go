package engine

import (
	"strings"
	"testing"
)

type collect struct{ got []string }

func (c *collect) OnMessage(_ *Conn, p []byte, _ int64) { c.got = append(c.got, string(p)) }
func (c *collect) OnClose(*Conn, error)                 {}

// TestFeedSSE: events give their data (lines joined by "\n") however the
// reads cut the stream; comments, ids and retry fields are skipped.
func TestFeedSSE(t *testing.T) {
	stream := "retry: 1500\n\nevent: welcome\ndata: {\"type\":\"welcome\"}\n\n:\n\n" +
		"event: msg\ndata: {\"a\":\ndata: 1}\nid: t:e:1\n\nevent: tick\r\ndata: {\"type\":\"tick\"}\r\n\r\n"
	want := []string{`{"type":"welcome"}`, "{\"a\":\n1}", `{"type":"tick"}`}
	for cut := 1; cut <= len(stream); cut++ {
		c := &Conn{sse: true}
		h := &collect{}
		for i := 0; i < len(stream); i += cut {
			if err := c.feed([]byte(stream[i:min(i+cut, len(stream))]), 0, h, 1<<10); err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
		}
		if strings.Join(h.got, "|") != strings.Join(want, "|") {
			t.Fatalf("cut %d: got %q, want %q", cut, h.got, want)
		}
		if c.rest != nil || c.frag != nil {
			t.Fatalf("cut %d: buffers kept after whole events: rest %q frag %q", cut, c.rest, c.frag)
		}
	}
	c := &Conn{sse: true}
	if err := c.feed([]byte("data: "+strings.Repeat("x", 2000)+"\n"), 0, &collect{}, 1<<10); err == nil {
		t.Fatal("an event over the cap was accepted")
	}
}

// TestCheckSSEResponse wants a 200 event stream.
func TestCheckSSEResponse(t *testing.T) {
	for h, ok := range map[string]bool{
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n": true,
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n":        false,
		"HTTP/1.1 400 Bad Request\r\n\r\n":                           false,
	} {
		if err := checkSSEResponse([]byte(h)); (err == nil) != ok {
			t.Errorf("%q: %v", h, err)
		}
	}
}
