package bus

// This file is the bus's side of presence (package presence): each topic's
// subscriber count, cluster-wide, and the member lists of the topics that
// keep one. The bus knows its local count (subs) and tells presence of
// every subscription that starts or ends, with the topic's lock held, so
// that presence sees one topic's changes in order; presence tells the bus
// the count on the other nodes (SetRemote). Count, the sum, is read
// lock-free by the hub's shards when they build a tick for a subscriber
// that asked for it.

// Presence is told of subscriptions; the bus calls it with the topic's
// lock held, so its methods must not block nor call the bus.
type Presence interface {
	// Join is called before s starts on topic; an error refuses the
	// subscription (a member list is full).
	Join(topic string, s *Subscription) error
	// Counted is called after topic's local count changed to subs (a
	// subscription started or ended); it returns the topic's count on the
	// other nodes (0 on a single node).
	Counted(topic string, subs int) (remote int64)
	// Leave is called after s ended on topic (also when the Local refused
	// a subscription Join had accepted).
	Leave(topic string, s *Subscription)
}

// SetPresence makes the bus tell p of every subscription. Call it before
// the bus is used.
func (b *Bus) SetPresence(p Presence) { b.presence = p }

// counted records a change of t's local count; t's lock is held.
func (b *Bus) counted(t *Topic) {
	if b.presence != nil {
		t.remote = b.presence.Counted(t.name, t.subs)
	}
	t.count.Store(int64(t.subs) + t.remote)
}

// SetRemote records that topic has remote subscriptions on the other
// nodes. A topic this node does not hold is left alone: its first local
// subscription asks presence for the remote count. Only one goroutine
// (presence's) may call it, so that its calls for one topic come in order.
func (b *Bus) SetRemote(topic string, remote int64) {
	t, _ := b.lock(topic, false)
	if t == nil {
		return
	}
	t.remote = remote
	t.count.Store(int64(t.subs) + remote)
	t.mu.Unlock()
}

// Lookup returns the named topic, nil if this node holds none. The topic
// may be swept later (then Lookup gives another).
func (b *Bus) Lookup(name string) *Topic {
	t, _ := b.lock(name, false)
	if t == nil {
		return nil
	}
	t.mu.Unlock()
	return t
}

// Count returns the topic's subscriber count, cluster-wide as far as
// presence knows: this node's subscriptions and the other nodes' last
// reported ones. It may be called from any goroutine.
func (t *Topic) Count() int64 { return t.count.Load() }
