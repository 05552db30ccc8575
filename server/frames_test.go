package main

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"wspush/server/wire"
)

// These tests cover frames after the upgrade that the guard in front of
// nbio's parser handles itself (issue 11, items 6–10): a frame budget, empty
// messages, frames before a violation, failing a connection at once, and
// UTF-8 checked fragment by fragment. They speak raw RFC 6455 (see
// rfc6455_test.go for the helpers).

// longGrace is a quiet server whose close grace is far longer than any
// wait in these tests: only the server's own closing of the socket after
// a violation can end a connection in time.
func longGrace(t *testing.T, flags ...string) *testServer {
	return startTBWith(t, func(c *Config) { c.Hub.CloseGrace = time.Minute },
		append([]string{"-push-interval", "0", "-ping-interval", "0", "-max-message-bytes", "1024"}, flags...)...)
}

// An unfinished message followed by endless empty continuation frames
// makes no message, so only the frame budget can stop it: 8 frames per
// allowed message (-max-msg-rate 100, burst 200: 1600 frames, then 800/s).
func TestFramesEmptyContinuationFloodCloses1008(t *testing.T) {
	s := longGrace(t)
	rc := rawDial(t, s)
	// A round trip first: the welcome can leave before the upgrade handler
	// has returned, and until it has, the edge holds what follows the
	// upgrade request (at most -max-header-bytes, or the connection is
	// cut). The pong is handled after that handler, so the flood below
	// meets the frame guard, not the edge's hold.
	rc.send(t, clientFrame(finBit|wire.OpText, pingMsg))
	if op, p := rc.read(t); op != wire.OpText || !bytes.Contains(p, []byte(`"pong"`)) {
		t.Fatalf("op %d %q, want the pong", op, p)
	}
	cont := clientFrame(wire.OpCont, nil)
	batch := bytes.Repeat(cont, 1000) // 6 KB, 1000 frames
	rc.send(t, clientFrame(wire.OpText, []byte("{")))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // at most 10 s and 2 million frames
		defer wg.Done()
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = rc.c.SetWriteDeadline(deadline)
			if _, err := rc.c.Write(batch); err != nil {
				return // closed by the server
			}
		}
	}()
	start := time.Now()
	reason := rc.expectClose(t, wire.ClosePolicy)
	rc.expectEOF(t, 2*time.Second)
	t.Logf("closed after %v", time.Since(start))
	close(stop)
	wg.Wait()
	if reason != "frame rate limit" {
		t.Fatalf("close reason %q, want \"frame rate limit\"", reason)
	}
	// The server shut its side at once; the socket goes when the client
	// closes its side (or after the close grace, here a minute).
	rc.c.Close()
	eventually(t, 3*time.Second, "a rate_limit close in the metrics", func() bool {
		return stats(t, s)["closed"].(map[string]any)["rate_limit"].(float64) == 1
	})
}

// Ordinary traffic stays well inside the frame budget: fragments and pings
// around messages at the message rate.
func TestFramesBudgetLeavesOrdinaryTrafficAlone(t *testing.T) {
	s := quietServer(t, "-max-msg-rate", "50", "-max-msg-burst", "50")
	rc := rawDial(t, s)
	for i := 0; i < 40; i++ { // 40 messages of 4 fragments with a ping each: 200 frames in a burst
		rc.send(t, clientFrame(wire.OpText, pingMsg[:5]), clientFrame(finBit|wire.OpPing, nil),
			clientFrame(wire.OpCont, pingMsg[5:9]), clientFrame(wire.OpCont, pingMsg[9:12]), clientFrame(finBit|wire.OpCont, pingMsg[12:]))
	}
	for pongs := 0; pongs < 80; {
		op, p := rc.read(t)
		switch {
		case op == wire.OpPong, op == wire.OpText && bytes.Contains(p, []byte(`"pong"`)):
			pongs++
		default:
			t.Fatalf("got op %d %q after %d answers, want pongs", op, p, pongs)
		}
	}
}

// RFC 6455 allows empty messages; nbio drops them, the guard delivers them.
func TestFramesEmptyMessagesAreDelivered(t *testing.T) {
	s := quietServer(t)
	rc := rawDial(t, s)
	for _, f := range [][]byte{
		clientFrame(finBit|wire.OpText, nil),
		clientFrame(finBit|wire.OpBinary, nil),
		append(clientFrame(wire.OpText, nil), clientFrame(finBit|wire.OpCont, nil)...),
	} {
		rc.send(t, f)
		op, p := rc.read(t)
		if op != wire.OpText || !bytes.Contains(p, []byte(`"error"`)) || !bytes.Contains(p, []byte(`"bad_request"`)) {
			t.Fatalf("got op %d %q, want a bad_request error", op, p)
		}
	}
	// In order with what surrounds them, in one write.
	rc.send(t, append(append(clientFrame(finBit|wire.OpText, pingMsg), clientFrame(finBit|wire.OpText, nil)...),
		clientFrame(finBit|wire.OpText, []byte(`{"type":"ping","id":8}`))...))
	for _, want := range []string{`"pong","id":7`, `"bad_request"`, `"pong","id":8`} {
		if op, p := rc.read(t); op != wire.OpText || !bytes.Contains(p, []byte(want)) {
			t.Fatalf("got op %d %q, want %s", op, p, want)
		}
	}
}

// An empty message is activity: it refreshes the idle timer.
func TestFramesEmptyMessagesKeepAClientAlive(t *testing.T) {
	s := startServer(t, "-push-interval", "0", "-ping-interval", "100ms", "-idle-timeout", "800ms",
		"-max-bad-messages", "1000")
	silent := rawDial(t, s)
	rc := rawDial(t, s)
	begin := time.Now()
	stop := begin.Add(2 * time.Second) // two and a half idle timeouts
	for time.Now().Before(stop) {
		rc.send(t, clientFrame(finBit|wire.OpText, nil))
		_ = rc.c.SetReadDeadline(time.Now().Add(time.Second))
		for { // until the answer; pings are not answered
			op, p, err := rc.readFrame()
			if err != nil {
				t.Fatalf("client sending empty messages: %v", err)
			}
			if op == wire.OpClose {
				t.Fatalf("client sending empty messages was closed after %v: %q", time.Since(begin), p)
			}
			if op == wire.OpText {
				break
			}
		}
		time.Sleep(50 * time.Millisecond) // the pace of the client, not a wait for the server
	}
	// The idle timeout works meanwhile: the silent client is gone.
	if reason := silent.expectClose(t, wire.CloseGoingAway); reason != "idle timeout" {
		t.Fatalf("silent client closed with %q", reason)
	}
}

// Valid frames that precede a violation in the same read are handled
// before the connection fails.
func TestFramesBeforeAViolationAreHandledFirst(t *testing.T) {
	s := quietServer(t)
	for name, bad := range map[string][]byte{
		"unmasked":      unmaskedFrame(finBit|wire.OpText, pingMsg),
		"reserved bits": clientFrame(finBit|0x20|wire.OpText, pingMsg),
		"126-byte ping": clientFrame(finBit|wire.OpPing, make([]byte, 126)),
	} {
		t.Run(name, func(t *testing.T) {
			rc := rawDial(t, s)
			rc.send(t, append(append(clientFrame(finBit|wire.OpPing, []byte("hb")), clientFrame(finBit|wire.OpText, pingMsg)...), bad...))
			if op, p := rc.read(t); op != wire.OpPong || string(p) != "hb" {
				t.Fatalf("first: op %d %q, want the pong frame", op, p)
			}
			if op, p := rc.read(t); op != wire.OpText || !bytes.Contains(p, []byte(`"pong","id":7`)) {
				t.Fatalf("second: op %d %q, want the JSON pong", op, p)
			}
			rc.expectClose(t, wire.CloseProtocolError)
			rc.expectEOF(t, 2*time.Second)
		})
	}
}

// A close frame that is itself a violation fails the connection: the
// server sends 1002 and closes the socket at once, without waiting for a
// close reply that will not come (the close grace here is a minute).
func TestFramesViolationClosesTheSocketAtOnce(t *testing.T) {
	s := longGrace(t)
	for name, f := range map[string][]byte{
		"126-byte close":       clientFrame(finBit|wire.OpClose, append(closePayload(1000, ""), make([]byte, 124)...)),
		"fragmented close":     clientFrame(wire.OpClose, closePayload(1000, "")),
		"unmasked text":        unmaskedFrame(finBit|wire.OpText, pingMsg),
		"continuation first":   clientFrame(finBit|wire.OpCont, pingMsg),
		"invalid UTF-8 (1007)": clientFrame(finBit|wire.OpText, []byte("{\"a\":\"\xff\"}")),
	} {
		t.Run(name, func(t *testing.T) {
			rc := rawDial(t, s)
			rc.send(t, f)
			code := wire.CloseProtocolError
			if bytes.Contains([]byte(name), []byte("1007")) {
				code = wire.CloseInvalidPayload
			}
			start := time.Now()
			rc.expectClose(t, code)
			rc.expectEOF(t, 500*time.Millisecond)
			t.Logf("closed %v after the close frame", time.Since(start))
		})
	}
}

// A fragmented text message whose first fragment is not a prefix of any
// UTF-8 text fails at once with 1007; the rest is never sent.
func TestFramesInvalidUTF8FailsOnTheFirstFragment(t *testing.T) {
	s := longGrace(t)
	for name, first := range map[string][]byte{
		"invalid byte":      []byte("{\"type\":\"ping\",\"id\":\"\xc3\x28"),
		"surrogate":         []byte("{\"id\":\"\xed\xa0\x80"),
		"cut in the middle": []byte("{\"id\":\"\xe2\x82"), // valid so far: no close (below)
	} {
		t.Run(name, func(t *testing.T) {
			rc := rawDial(t, s)
			rc.send(t, clientFrame(wire.OpText, first))
			if name == "cut in the middle" {
				// Valid so far: the connection stays open, and the message
				// completes into a pong.
				rc.send(t, clientFrame(finBit|wire.OpPing, nil))
				if op, _ := rc.read(t); op != wire.OpPong {
					t.Fatalf("got op %d, want a pong frame", op)
				}
				rc.send(t, clientFrame(finBit|wire.OpCont, []byte("\xac\",\"type\":\"ping\"}")))
				if op, p := rc.read(t); op != wire.OpText || !bytes.Contains(p, []byte(`"pong"`)) {
					t.Fatalf("got op %d %q, want the JSON pong", op, p)
				}
				return
			}
			rc.expectClose(t, wire.CloseInvalidPayload)
			rc.expectEOF(t, 500*time.Millisecond)
		})
	}
}
