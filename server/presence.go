package main

import (
	"flag"

	"wspush/server/internal/presence"
)

// presenceFlags binds the presence flags (docs/backend.md, "Presence").
func presenceFlags(fs *flag.FlagSet, c *presence.Config) {
	fs.DurationVar(&c.Period, "presence-period", presence.DefaultPeriod, "how often a cluster node reports its changed subscriber counts and member lists, and member join/leave events are sent")
	fs.DurationVar(&c.Lease, "presence-lease", 0, "a cluster node not heard from for this long is probed, and dropped with its counts and members if NATS no longer has its connection; 0 = 3 × -presence-period")
	fs.DurationVar(&c.MaxLease, "presence-max-lease", 0, "a cluster node that NATS still shows connected but that sends no report for this long is dropped too (stretched to 3 × the longest gap between two reports seen lately, up to 4 ×); 0 = 10 × the lease")
	fs.StringVar(&c.Members, "presence-members", "", "comma-separated topic patterns (room.*, chat.>) whose topics keep member lists with join/leave events; empty = none")
	fs.IntVar(&c.MaxMembers, "presence-max-members", presence.DefaultMaxMembers, "most members in one topic's member list (cluster-wide); a subscription over it is refused with limit")
	fs.DurationVar(&c.Grace, "presence-grace", presence.DefaultGrace, "a user whose last connection left a member topic stays listed this long, so a quick reconnect makes no leave and join; 0 = none")
}

// startPresence wires presence: the bus tells it of subscriptions, the hub
// writes its member events, the webhook sender (if any) gets joins and
// leaves, and on a cluster it shares counts over the cluster bus's NATS
// connection. It joins the group after the cluster, so that it stops
// (saying goodbye on NATS) before the connection closes.
func (n *node) startPresence(cfg Config) error {
	pc := cfg.Presence
	if pc.Grace == 0 {
		pc.Grace = -1 // the flag's 0 is none
	}
	pc.Logger = cfg.Gateway.Logger
	var events presence.Events
	if n.webhooks != nil {
		events = n.webhooks.Presence
	}
	t, err := presence.New(pc, n.bus, n.hub, events)
	if err != nil {
		return err
	}
	if n.cluster != nil {
		t.UseNATS(n.cluster.Conn())
	}
	n.bus.SetPresence(t)
	n.presence = t
	presence.Register(n.admin, t)
	n.group.add("presence", t.Run)
	return nil
}
