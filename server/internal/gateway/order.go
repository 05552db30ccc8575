package gateway

import "sync"

// MaxHeld bounds the messages a connection may send while one of its
// backend hook calls is in flight; over it a message is answered at once
// with an "overloaded" error frame (and, being the only reply out of
// order, not handled).
const MaxHeld = 16

// Phases of an inOrder.
const (
	phaseIdle     = iota // messages are handled as they arrive, by nbio's executor
	phaseCalling         // a hook call is in flight: messages are held
	phaseDraining        // the call's reply is out: held messages are handled in order
)

// heldMsg is a message waiting behind a hook call: a copy of its payload.
type heldMsg struct {
	text bool
	data []byte
}

// inOrder keeps one connection's replies in the order of its messages
// across its backend hook calls (a ping sent after an rpc gets its pong
// after the rpc_result). A connection has one only once it has made a
// hook call (or waits for the connect hook): session.hk is nil until then.
//
// The rule it enforces: exactly one goroutine handles the connection's
// messages at a time. In phaseIdle that is nbio's executor (onMessage);
// once a message starts a call (begin), later messages are held, and the
// goroutine that delivers the call's reply (a hook worker) becomes the
// handler: it sends the reply, then takes the held messages one by one
// (finish, next) until none is left (back to phaseIdle) or one of them
// starts another call. The hand-over between those goroutines is mu's.
type inOrder struct {
	mu     sync.Mutex // guards every field below
	phase  uint8
	closed bool      // the connection has closed: held messages are dropped
	q      []heldMsg // at most MaxHeld; allocated only while messages wait
}

// hold keeps a copy of a message that arrived while a call is in flight or
// held messages are being handled, and reports true; it reports false when
// the message may be handled now. full: it was held-worthy but over
// MaxHeld, and was not kept.
func (o *inOrder) hold(text bool, data []byte) (held, full bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.phase == phaseIdle {
		return false, false
	}
	if len(o.q) >= MaxHeld {
		return true, true
	}
	o.q = append(o.q, heldMsg{text: text, data: append([]byte(nil), data...)})
	return true, false
}

// begin marks a call in flight; the handler calls it before it starts
// the call. It reports false when the connection has closed.
func (o *inOrder) begin() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.phase = phaseCalling
	return true
}

// finish ends the call whose reply has just been sent (or that could not
// start): the caller is now the handler and drains with next.
func (o *inOrder) finish() {
	o.mu.Lock()
	o.phase = phaseDraining
	o.mu.Unlock()
}

// next returns the oldest held message. It reports false, and the caller
// stops handling, when a handled message started another call, when none
// is left (the connection is idle again), or when the connection closed.
func (o *inOrder) next() (heldMsg, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.phase == phaseCalling:
		return heldMsg{}, false
	case o.closed || len(o.q) == 0:
		o.phase, o.q = phaseIdle, nil
		return heldMsg{}, false
	}
	m := o.q[0]
	o.q[0] = heldMsg{}
	o.q = o.q[1:]
	return m, true
}

// close marks the connection closed and drops what it held.
func (o *inOrder) close() {
	o.mu.Lock()
	o.closed, o.q = true, nil
	o.mu.Unlock()
}

// ifOpen runs f under mu unless the connection has closed, and reports
// whether it ran: what f records is then seen by the close that follows.
func (o *inOrder) ifOpen(f func()) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	f()
	return true
}
