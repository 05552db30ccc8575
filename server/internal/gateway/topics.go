package gateway

import (
	"errors"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"wspush/server/internal/bus"
	"wspush/server/internal/hub"
	"wspush/server/wire"
)

// fail sends cl an error frame that does not count as a bad message: the
// request was well formed but cannot be granted.
func (g *Gateway) fail(cl *hub.Client, code, reason string, id []byte) {
	g.reply(cl, func(b []byte) []byte { return wire.AppendError(b, code, reason, id) })
}

func (g *Gateway) subscribe(c *websocket.Conn, cl *hub.Client, msg *wire.ClientMsg) {
	if cl.Subscribed(msg.Topic) {
		g.fail(cl, wire.CodeBadRequest, "already subscribed to "+msg.Topic, msg.ID)
		return
	}
	if cl.Subs() >= g.cfg.MaxSubs {
		g.fail(cl, wire.CodeLimit, "subscription limit reached", msg.ID)
		return
	}
	latest := msg.Mode == wire.ModeLatest
	if latest && g.hub.PushInterval() == 0 {
		g.fail(cl, wire.CodeBadRequest, "latest mode rides on ticks, and this server sends none (-push-interval 0)", msg.ID)
		return
	}
	sub := bus.Subscription{
		Subscriber: cl,
		Topic:      msg.Topic,
		Latest:     latest,
		Resume:     bus.Resume{Since: msg.Since, Epoch: msg.Epoch, HasSince: msg.HasSince},
		ID:         msg.ID,
		Presence:   msg.Presence,
		User:       userOf(sessionOf(c)),
	}
	if g.hooks.subscribe != nil {
		g.subscribeHook(c, cl, msg, sub) // hooks.go
		return
	}
	if err := g.bus.Subscribe(sub); err != nil {
		g.fail(cl, wire.CodeLimit, err.Error(), msg.ID)
	}
}

func (g *Gateway) unsubscribe(cl *hub.Client, msg *wire.ClientMsg) {
	if err := g.bus.Unsubscribe(bus.Subscription{Subscriber: cl, Topic: msg.Topic, ID: msg.ID}); err != nil {
		g.fail(cl, wire.CodeBadRequest, "not subscribed to "+msg.Topic, msg.ID)
	}
}

func (g *Gateway) publish(c *websocket.Conn, cl *hub.Client, msg *wire.ClientMsg) {
	if !g.cfg.ClientPublish {
		g.fail(cl, wire.CodeForbidden, "clients may not publish on this server (-client-publish is off); use the publish API", msg.ID)
		return
	}
	if !g.mayPublish(c, cl, msg) {
		return
	}
	if g.hooks.publish != nil {
		g.publishHook(c, cl, msg) // hooks.go
		return
	}
	g.publishNow(cl, msg.Topic, append([]byte(nil), msg.Data...), msg.ID)
}

// publishNow publishes data, which the bus keeps, and answers the pub.
func (g *Gateway) publishNow(cl *hub.Client, topic string, data, id []byte) {
	m, err := g.bus.Publish(topic, data)
	switch {
	case errors.Is(err, bus.ErrOverloaded):
		g.fail(cl, wire.CodeOverloaded, err.Error(), id)
	case err != nil:
		g.fail(cl, wire.CodeLimit, err.Error(), id)
	default:
		g.reply(cl, func(b []byte) []byte { return wire.AppendPublished(b, topic, m.Seq, id) })
	}
}
