package main

import (
	"wspush/server/internal/gateway"
	"wspush/server/internal/hub"
	"wspush/server/internal/webhook"
)

// startWebhooks wires the webhook sender (with -webhook-url): the bus tells
// it of topics occupied and vacated, the gateway of closed connections. It
// joins the group before the gateway, so that it stops after it and
// flushes the closes of the last clients.
func (n *node) startWebhooks(cfg Config, gcfg *gateway.Config) error {
	if cfg.Webhook.URL == "" {
		return nil
	}
	wcfg := cfg.Webhook
	wcfg.Logger = cfg.Gateway.Logger
	s, err := webhook.New(wcfg, n.m.Registry())
	if err != nil {
		return err
	}
	n.webhooks = s
	n.bus.SetOccupancy(s.TopicOccupancy)
	gcfg.OnClosed = func(cl *hub.Client, user string) { s.ConnectionClosed(cl.ID(), user, cl.CloseLabel()) }
	n.group.add("webhooks", s.Run)
	return nil
}
