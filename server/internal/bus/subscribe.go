package bus

import "wspush/server/wire"

// This file is the subscription flow. A subscription is a plain value: the
// caller (the gateway) passes a Subscription to Subscribe or Unsubscribe;
// the bus looks the topic up, takes its lock, works out where the
// subscription starts, and hands it to Local under that lock. So the rule
// that keeps a subscriber's replay and live messages gapless (nothing is
// published on the topic between the start and the hand-over) is kept here,
// in one place, and Local's side of it is reachable only through Local.

// Subscriber is whoever subscribes, as Local knows it (the hub's client);
// the bus only passes it on.
type Subscriber interface {
	ID() string
}

// Subscription is one subscriber's subscription to one topic, as the
// gateway asks for it and Local receives it.
type Subscription struct {
	Subscriber Subscriber
	Topic      string // the topic's name
	// Latest: latest mode (the newest value rides on the subscriber's
	// ticks; no replay), rather than stream mode.
	Latest bool
	Resume Resume // where the subscription resumes (Subscribe only)
	ID     []byte // the request's id, echoed in the reply
	// Data (Subscribe only), when not nil, is JSON text sent in the reply
	// as "data": the subscribe hook's answer (docs/backend.md).
	Data []byte
	// Quiet: no reply (an Unsubscribe because the subscriber went away).
	Quiet bool
	// User (Subscribe only) is the subscriber's user (the JWT's sub or the
	// connect hook's answer), "" without authentication: presence lists
	// it in the topic's members.
	User string
	// Presence (Subscribe only): the subscriber's ticks carry the topic's
	// cluster-wide subscriber count when it changed (Topic.Count).
	Presence bool
	// Members (Subscribe only) is set by Presence.Join for a subscriber
	// that asked for presence on a topic with a member list: the list its
	// subscribed reply carries.
	Members []wire.Member
}

// Resume asks for the messages after Since of incarnation Epoch.
type Resume struct {
	Since    uint64
	Epoch    string
	HasSince bool
}

// Start is where a subscription begins.
type Start struct {
	Last   uint64     // the topic's last seq; live messages follow it
	Epoch  string     // the topic's incarnation
	Replay []*Message // the missed messages, in order (resume only)
	// Gone: the resume could not be served (another epoch, or history no
	// longer covers Since); the subscription starts live at Last.
	Gone bool
}

// Subscribe starts s: with the topic's lock held it works out where the
// subscription starts and hands both to Local.Subscribe.
func (b *Bus) Subscribe(s Subscription) error {
	t, err := b.lock(s.Topic, true)
	if err != nil {
		return err
	}
	defer t.mu.Unlock()
	st := Start{Last: t.seq, Epoch: t.epoch}
	if s.Resume.HasSince {
		st.Replay, st.Gone = t.since(s.Resume, b.now().UnixNano()-int64(b.cfg.HistoryTTL))
	}
	if b.presence != nil {
		if err := b.presence.Join(t.name, &s); err != nil {
			return err
		}
	}
	if err := b.local.Subscribe(t, s, st); err != nil {
		if b.presence != nil {
			b.presence.Leave(t.name, &s)
		}
		return err
	}
	t.subs++
	b.counted(t)
	if t.subs == 1 && b.occupancy != nil {
		b.occupancy(t.name, true)
	}
	return nil
}

// SetOccupancy makes the bus call f when a topic gets its first local
// subscription (occupied) and when its last one ends (not occupied). f is
// called with the topic's lock held, so the calls for one topic come in
// order; it must not block (the webhook sender queues without waiting).
// Call it before the bus is used.
func (b *Bus) SetOccupancy(f func(topic string, occupied bool)) { b.occupancy = f }

// since returns the messages after r.Since, or gone when they are not all
// in the history (or were published before cutoff).
func (t *Topic) since(r Resume, cutoff int64) (replay []*Message, gone bool) {
	if r.Epoch != t.epoch || r.Since > t.seq {
		return nil, true
	}
	t.trim() // entries evicted bus-wide are gone
	missed := t.seq - r.Since
	if missed == 0 {
		return nil, false
	}
	if missed > uint64(t.n) {
		return nil, true
	}
	replay = make([]*Message, 0, missed)
	for i := t.n - int(missed); i < t.n; i++ {
		m := t.hist[(t.head+i)%len(t.hist)]
		if m.TS < cutoff {
			return nil, true
		}
		replay = append(replay, m)
	}
	return replay, false
}

// Unsubscribe ends s: with the topic's lock held it hands s to
// Local.Unsubscribe. It returns ErrNotSubscribed when there is no such
// subscription.
func (b *Bus) Unsubscribe(s Subscription) error {
	// A topic with a subscription is never swept, so it is still there.
	t, _ := b.lock(s.Topic, false)
	if t == nil {
		return ErrNotSubscribed
	}
	defer t.mu.Unlock()
	if !b.local.Unsubscribe(t, s) {
		return ErrNotSubscribed
	}
	t.subs--
	b.counted(t)
	if b.presence != nil {
		b.presence.Leave(t.name, &s)
	}
	if t.subs == 0 && b.occupancy != nil {
		b.occupancy(t.name, false)
	}
	return nil
}
