package main

import (
	"flag"
	"fmt"
	"os"

	"wspush/server/internal/natsbus"
)

// clusterFlags binds the NATS flags (docs/cluster.md) into c; parseConfig
// copies the history settings over from the bus's once parsed.
func clusterFlags(fs *flag.FlagSet, c *natsbus.Config) {
	fs.StringVar(&c.URLs, "nats", "", "NATS server URLs (nats://host:4222,…): run as one node of a cluster; empty = single process, in-memory bus")
	fs.StringVar(&c.Creds, "nats-creds", "", "NATS credentials file")
	fs.StringVar(&c.TLSCA, "nats-tls-ca", "", "CA bundle (PEM) to verify the NATS servers")
	fs.StringVar(&c.TLSCert, "nats-tls-cert", "", "client certificate (PEM) for NATS")
	fs.StringVar(&c.TLSKey, "nats-tls-key", "", "client key (PEM) for -nats-tls-cert")
	fs.StringVar(&c.Stream, "nats-stream", "WSPUSH", "JetStream stream holding topic history")
	fs.IntVar(&c.Replicas, "nats-replicas", 1, "replicas of the stream (3 on a NATS cluster)")
	host, _ := os.Hostname()
	c.Name = fmt.Sprintf("wspush %s pid %d", host, os.Getpid())
}

// validateCluster checks the NATS flags.
func (c Config) validateCluster() []error {
	var errs []error
	n := c.NATS
	if n.URLs == "" && (n.Creds != "" || n.TLSCA != "" || n.TLSCert != "") {
		errs = append(errs, fmt.Errorf("-nats-creds and -nats-tls-* need -nats"))
	}
	if (n.TLSCert == "") != (n.TLSKey == "") {
		errs = append(errs, fmt.Errorf("-nats-tls-cert and -nats-tls-key go together"))
	}
	if n.URLs != "" && c.State.Dir != "" {
		errs = append(errs, fmt.Errorf("-state-dir is for a single node: with -nats the topic state is kept in JetStream"))
	}
	if n.Replicas < 1 || n.Replicas > 5 {
		errs = append(errs, fmt.Errorf("-nats-replicas must be 1 to 5"))
	}
	return errs
}
