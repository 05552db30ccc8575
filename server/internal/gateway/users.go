package gateway

import (
	"errors"
	"hash/maphash"
	"sync"

	"wspush/server/internal/bus"
	"wspush/server/internal/hub"
)

// This file is the index of each user's connections, for the server API
// (disconnect a user, unsubscribe a user). A user is an authenticated
// connection's JWT sub; with authentication off connections have no user
// and the index stays empty. It costs a connection one pointer in its
// user's list, taken and given back by opened and closed (access.go) under
// one of userShards mutexes, each guarding its own map.

// ErrNoUsers: authentication is off, so connections have no user.
var ErrNoUsers = errors.New("gateway: connections have no user: authentication is off (set -jwt-secret or -jwt-public-key)")

const userShards = 16

type userIndex struct {
	seed   maphash.Seed
	shards [userShards]struct {
		mu sync.Mutex
		m  map[string][]*hub.Client // guarded by mu
	}
}

func newUserIndex() *userIndex {
	x := &userIndex{seed: maphash.MakeSeed()}
	for i := range x.shards {
		x.shards[i].m = map[string][]*hub.Client{}
	}
	return x
}

func (x *userIndex) shard(user string) int { return int(maphash.String(x.seed, user) % userShards) }

func (x *userIndex) add(user string, cl *hub.Client) {
	s := &x.shards[x.shard(user)]
	s.mu.Lock()
	s.m[user] = append(s.m[user], cl)
	s.mu.Unlock()
}

func (x *userIndex) remove(user string, cl *hub.Client) {
	s := &x.shards[x.shard(user)]
	s.mu.Lock()
	l := s.m[user]
	for i, c := range l {
		if c == cl {
			l[i] = l[len(l)-1]
			l[len(l)-1] = nil
			l = l[:len(l)-1]
			break
		}
	}
	if len(l) == 0 {
		delete(s.m, user)
	} else {
		s.m[user] = l
	}
	s.mu.Unlock()
}

// conns returns a copy of user's connections.
func (x *userIndex) conns(user string) []*hub.Client {
	s := &x.shards[x.shard(user)]
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*hub.Client(nil), s.m[user]...)
}

// DisconnectUser closes every connection of user with r and returns how
// many there were (0: the user is not connected). It may be called from
// any goroutine and does not wait for the closes.
func (g *Gateway) DisconnectUser(user string, r hub.Reason) (int, error) {
	if !g.AuthEnabled() {
		return 0, ErrNoUsers
	}
	l := g.acc.byUser.conns(user)
	for _, cl := range l {
		cl.CloseWith(r)
	}
	return len(l), nil
}

// UnsubscribeUser ends every subscription of user's connections to topic;
// each gets its "unsubscribed" frame. It returns the user's connections
// and how many of them were subscribed. It may be called from any
// goroutine.
func (g *Gateway) UnsubscribeUser(user, topic string) (conns, unsubscribed int, err error) {
	if !g.AuthEnabled() {
		return 0, 0, ErrNoUsers
	}
	l := g.acc.byUser.conns(user)
	for _, cl := range l {
		if g.bus.Unsubscribe(bus.Subscription{Subscriber: cl, Topic: topic}) == nil {
			unsubscribed++
		}
	}
	return len(l), unsubscribed, nil
}

// userOf returns c's user, "" without authentication.
func userOf(s *session) string {
	if s == nil || s.grant() == nil {
		return ""
	}
	return s.grant().Sub
}
