package presence

import (
	"sort"

	"wspush/server/internal/bus"
	"wspush/server/wire"
)

// This file is the member lists: local members (what the bus tells), the
// grace period, the cluster-wide union and the events. Everything here runs
// with t.mu held, but the callers' calls of events and the hub.

// memberSet is a topic's local members.
type memberSet struct {
	users    map[string]*member // by member key
	byClient map[string]string  // connection id → member key
}

// member is one user (or, without authentication, one connection) in a
// topic on this node.
type member struct {
	user    string
	clients []string // its connections subscribed here
	last    string   // the last connection that left (for the leave event)
	leaveAt int64    // Unix ns; set while in grace (no connections)
	queued  bool     // t.grace holds an entry for this member (at most one)
}

// MaxGraceEntries caps the members in their grace period on a node; over
// it a member whose last connection leaves leaves at once (as with no
// grace): a leave and a join more, never more memory. 2^20 entries hold
// about 0.5 GB with their members.
const MaxGraceEntries = 1 << 20

// graceEntry is a member waiting in t.grace. A member has at most one
// entry: leaving again while an entry is queued only moves m.leaveAt, and
// the entry, when it comes due, is queued again for the later time (see
// expireGrace). So the grace list is bounded by the members, not by how
// often a client subscribes and unsubscribes.
type graceEntry struct {
	topic, key string
	m          *member
	at         int64
}

// memberKey is what a member is known by: its user, or its connection
// without authentication.
func memberKey(user, client string) string {
	if user != "" {
		return "u:" + user
	}
	return "c:" + client
}

// Join implements bus.Presence: in a member topic, the subscriber's user
// joins (or gets one more connection, or comes back within its grace); a
// subscriber that asked for presence gets the member list in its
// subscribed reply.
func (t *Tracker) Join(topic string, s *bus.Subscription) error {
	if len(t.patterns) == 0 || !t.isMemberTopic(topic) {
		return nil
	}
	client := s.Subscriber.ID()
	key := memberKey(s.User, client)
	t.mu.Lock()
	set := t.sets[topic]
	if set == nil {
		set = &memberSet{users: map[string]*member{}, byClient: map[string]string{}}
	}
	m := set.users[key]
	fresh := false
	if m == nil {
		if t.size(topic, set) >= t.cfg.MaxMembers {
			t.mu.Unlock()
			return ErrMemberCap
		}
		m = &member{user: s.User}
		set.users[key] = m
		t.sets[topic] = set
		t.changed(topic)
		fresh = t.remote[topic][key] == 0
	}
	m.clients = append(m.clients, client)
	m.leaveAt = 0 // back within the grace: no leave, no join
	set.byClient[client] = key
	if s.Presence {
		s.Members = t.union(topic)
	}
	t.mu.Unlock()
	if fresh && t.events != nil {
		t.events(topic, s.User, client, true)
	}
	return nil
}

// Leave implements bus.Presence: the connection leaves the topic's member
// list; the member's last one starts its grace period.
func (t *Tracker) Leave(topic string, s *bus.Subscription) {
	if len(t.patterns) == 0 {
		return
	}
	client := s.Subscriber.ID()
	t.mu.Lock()
	set := t.sets[topic]
	if set == nil {
		t.mu.Unlock()
		return
	}
	key, ok := set.byClient[client]
	if !ok {
		t.mu.Unlock()
		return
	}
	delete(set.byClient, client)
	m := set.users[key]
	for i, c := range m.clients {
		if c == client {
			m.clients = append(m.clients[:i], m.clients[i+1:]...)
			break
		}
	}
	if len(m.clients) > 0 {
		t.mu.Unlock()
		return
	}
	m.last = client
	if t.cfg.Grace > 0 && (m.queued || len(t.grace) < MaxGraceEntries) {
		m.leaveAt = t.now().UnixNano() + int64(t.cfg.Grace)
		if !m.queued {
			m.queued = true
			t.grace = append(t.grace, graceEntry{topic: topic, key: key, m: m, at: m.leaveAt})
		}
		t.mu.Unlock()
		return
	}
	tell := t.end(topic, set, key)
	t.mu.Unlock()
	if tell && t.events != nil {
		t.events(topic, m.user, client, false)
	}
}

// changed marks a member topic's list changed, for the events and the
// next report.
func (t *Tracker) changed(topic string) {
	t.mdirty[topic] = struct{}{}
	if t.net != nil {
		t.dirty[topic] = struct{}{}
	}
}

// end takes key out of the topic's local members; it reports whether this
// node should tell the webhook (no other node lists the member).
func (t *Tracker) end(topic string, set *memberSet, key string) bool {
	delete(set.users, key)
	if len(set.users) == 0 {
		delete(t.sets, topic)
	}
	t.changed(topic)
	return t.remote[topic][key] == 0
}

// left is a member whose leave the webhook is told of.
type left struct{ topic, user, client string }

// expireGrace ends the members whose grace ran out by now. An entry whose
// member left again later (a newer leaveAt) is queued again for that time;
// it may then sit behind entries due later than it, so such a leave can
// come up to one grace period late, but it always comes.
func (t *Tracker) expireGrace(now int64, out []left) []left {
	i := 0
	var again []graceEntry
	for ; i < len(t.grace) && t.grace[i].at <= now; i++ {
		g := t.grace[i]
		g.m.queued = false
		set := t.sets[g.topic]
		if set == nil || set.users[g.key] != g.m || g.m.leaveAt == 0 {
			continue // ended already, or came back
		}
		if g.m.leaveAt > now {
			g.at, g.m.queued = g.m.leaveAt, true
			again = append(again, g)
			continue
		}
		if t.end(g.topic, set, g.key) {
			out = append(out, left{g.topic, g.m.user, g.m.last})
		}
	}
	clear(t.grace[:i])
	t.grace = append(t.grace[i:], again...)
	if len(t.grace) == 0 {
		t.grace = nil
	}
	return out
}

// size is the topic's member count, cluster-wide: the local members and
// those only other nodes list.
func (t *Tracker) size(topic string, set *memberSet) int {
	n := len(set.users)
	for k := range t.remote[topic] {
		if set.users[k] == nil {
			n++
		}
	}
	return n
}

// unionMap returns the topic's members cluster-wide, by key.
func (t *Tracker) unionMap(topic string) map[string]wire.Member {
	u := map[string]wire.Member{}
	if set := t.sets[topic]; set != nil {
		for k, m := range set.users {
			c := m.last
			if len(m.clients) > 0 {
				c = m.clients[0]
			}
			u[k] = wire.Member{User: m.user, Client: c}
		}
	}
	if t.remote[topic] != nil {
		for _, p := range t.peers {
			for _, m := range p.members[topic] {
				k := memberKey(m.User, m.Client)
				if _, ok := u[k]; !ok {
					u[k] = m
				}
			}
		}
	}
	return u
}

// union returns the topic's members cluster-wide, sorted.
func (t *Tracker) union(topic string) []wire.Member {
	u := t.unionMap(topic)
	l := make([]wire.Member, 0, len(u))
	for _, m := range u {
		l = append(l, m)
	}
	sortMembers(l)
	return l
}

func sortMembers(l []wire.Member) {
	sort.Slice(l, func(i, j int) bool {
		if l[i].User != l[j].User {
			return l[i].User < l[j].User
		}
		return l[i].Client < l[j].Client
	})
}

// maxEventMembers bounds the members one presence frame lists.
const maxEventMembers = 100

// event is a presence frame for a topic's subscribers.
type event struct {
	topic string
	frame []byte
}

// memberEvents works out, for every member topic that changed, who joined
// and left the cluster-wide list since the subscribers were last told.
func (t *Tracker) memberEvents(out []event) []event {
	for topic := range t.mdirty {
		u := t.unionMap(topic)
		prev := t.shown[topic]
		var join, leave []wire.Member
		for k, m := range u {
			if _, ok := prev[k]; !ok {
				join = append(join, m)
			}
		}
		for k, m := range prev {
			if _, ok := u[k]; !ok {
				leave = append(leave, m)
			}
		}
		if len(u) == 0 {
			delete(t.shown, topic)
		} else {
			t.shown[topic] = u
		}
		sortMembers(join)
		sortMembers(leave)
		for len(join) > 0 || len(leave) > 0 {
			j, l := min(len(join), maxEventMembers), min(len(leave), maxEventMembers)
			frame := wire.EndFrame(wire.AppendPresenceEvent(wire.BeginFrame(nil), topic, join[:j], leave[:l]), wire.OpText)
			out = append(out, event{topic, frame})
			join, leave = join[j:], leave[l:]
		}
	}
	clear(t.mdirty)
	return out
}
