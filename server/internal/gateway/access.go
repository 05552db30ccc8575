package gateway

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"wspush/server/internal/admission"
	"wspush/server/internal/auth"
	"wspush/server/internal/frameguard"
	"wspush/server/internal/hub"
	"wspush/server/internal/metrics"
	"wspush/server/wire"
)

// Access-control defaults (see docs/security.md).
const (
	DefaultMaxConnsPerIP = 0    // off: carrier-grade NAT puts thousands of clients behind one address
	DefaultAcceptRate    = 5000 // upgrades per second, whole server
	DefaultMaxMsgRate    = 100  // inbound messages per second, per connection
	DefaultMaxPubRate    = 10   // client pub messages per second, per connection
)

// session is one connection's gateway-side state: its websocket.Conn's
// session. cl is set by onOpen; the grant and the counted ip (in x) by the
// upgrade handler right after the upgrade, before any message of the
// connection is handled (nbio runs the handler, the connection's messages
// and its close in order on one executor); msgs and x's pubs belong to the
// message handler.
//
// A WebSocket connection's session is its one allocation of gateway and
// hub state: cl points to client, and fg is its frame guard (plain TCP;
// only the poller goroutine uses it, after the upgrade handler has run:
// guard.go). Idle, it is what a connection costs beyond nbio's own objects:
// 240 B, a size class of its own (TestSessionSizeClass). What only some
// connections need (a grant, a per-IP count, a publish budget) is in x,
// allocated on first use, so that the common idle connection does not
// carry it.
type session struct {
	cl   *hub.Client
	hk   *inOrder      // order.go: nil until a backend hook call
	x    *sessionExtra // nil until a grant, a per-IP count or a client publish
	msgs admission.Bucket

	client hub.Client // what cl points to for a WebSocket connection

	// The frame guard (guard.go): only the poller goroutine uses fg and
	// failed; the failing job on the executor sets halfClosed.
	fg         frameguard.Guard
	failed     bool        // a violation was found: what follows is dropped
	halfClosed atomic.Bool // failConn left the socket half-closed (see closeAfterFailing)
}

// sessionExtra is the state of a session that idle connections of the
// default configuration do not need; the session's executor order (see
// session) applies to it as to the session.
type sessionExtra struct {
	grant *auth.Grant // nil with authentication off
	ip    netip.Addr  // counted against the per-IP cap; zero if not counted
	pubs  admission.Bucket
}

// extra returns s.x, allocating it on first use.
func (s *session) extra() *sessionExtra {
	if s.x == nil {
		s.x = &sessionExtra{}
	}
	return s.x
}

// grant returns the connection's grant, nil with authentication off.
func (s *session) grant() *auth.Grant {
	if s.x == nil {
		return nil
	}
	return s.x.grant
}

// countedIP returns the address counted against the per-IP cap for the
// connection, the zero Addr if none.
func (s *session) countedIP() netip.Addr {
	if s.x == nil {
		return netip.Addr{}
	}
	return s.x.ip
}

func sessionOf(c *websocket.Conn) *session {
	s, _ := c.Session().(*session)
	return s
}

// access is the gateway's admission and authorization state.
type access struct {
	verifier  *auth.Verifier // nil: no authentication
	users     auth.Users
	byUser    *userIndex // users.go: each user's connections
	perIP     *admission.PerIP
	countsIP  bool // perIP has a cap: a session keeps the address it counted
	accept    *admission.Rate
	msgLimit  admission.Limit
	pubLimit  admission.Limit
	origins   map[string]bool // nil: same origin only
	anyOrigin bool
}

func newAccess(cfg *Config) (*access, error) {
	a := &access{byUser: newUserIndex()}
	var err error
	if a.verifier, err = auth.New(cfg.Auth); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	perIP := orDefault(cfg.MaxConnsPerIP, DefaultMaxConnsPerIP)
	a.perIP = admission.NewPerIP(perIP)
	a.countsIP = perIP > 0
	rate := orDefault(cfg.AcceptRate, DefaultAcceptRate)
	a.accept = admission.NewRate(admission.NewLimit(float64(rate), orDefault(cfg.AcceptBurst, max(rate, 1))))
	msgRate := orDefault(cfg.MaxMsgRate, DefaultMaxMsgRate)
	a.msgLimit = admission.NewLimit(float64(msgRate), orDefault(cfg.MaxMsgBurst, max(2*msgRate, 1)))
	pubRate := orDefault(cfg.MaxClientPubRate, DefaultMaxPubRate)
	a.pubLimit = admission.NewLimit(float64(pubRate), orDefault(cfg.MaxClientPubBurst, max(2*pubRate, 1)))
	for _, o := range cfg.AllowedOrigins {
		o = strings.TrimSpace(o)
		switch {
		case o == "":
		case o == "*":
			a.anyOrigin = true
		default:
			n, err := normalizeOrigin(o)
			if err != nil {
				return nil, fmt.Errorf("gateway: allowed origin %q: %w", o, err)
			}
			if a.origins == nil {
				a.origins = map[string]bool{}
			}
			a.origins[n] = true
		}
	}
	return a, nil
}

// orDefault maps a Config number to its value by wspush's one scheme: 0
// is def, negative is 0 (off).
func orDefault(v, def int) int { return max(cmp.Or(v, def), 0) }

// normalizeOrigin returns "scheme://host[:port]" in lower case, refusing
// anything with a path, query or user info.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", fmt.Errorf("origin: %w", err)
	}
	if u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return "", errors.New("origin: want scheme://host[:port]")
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// checkOrigin is the upgrader's CheckOrigin. A request without Origin is
// not from a browser and passes: the check exists to stop other sites'
// pages from using a visitor's browser (cross-site WebSocket hijacking).
func (a *access) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	switch {
	case origin == "" || a.anyOrigin:
		return true
	case a.origins != nil:
		n, err := normalizeOrigin(origin)
		return err == nil && a.origins[n]
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// admit runs the checks that come before an upgrade, cheapest first: the
// accept rate (503), the token (401), the per-IP cap (429). It answers a
// refused request itself and returns false. On success the caller owns the
// per-IP count of ip and must give it back (release) if the upgrade fails.
// With a connect hook as well, a request without a token passes with a nil
// grant: the hook decides about it (a token that is there must be valid).
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request) (*auth.Grant, netip.Addr, bool) {
	a := g.acc
	if ok, wait := a.accept.Allow(time.Now().UnixNano()); !ok {
		g.m.UpgradeFailed(metrics.UpgradeAcceptRate)
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
		http.Error(w, "server is accepting connections at its rate limit; retry later", http.StatusServiceUnavailable)
		return nil, netip.Addr{}, false
	}
	var grant *auth.Grant
	if a.verifier != nil {
		tok, err := auth.FromRequest(r)
		if err == nil {
			grant, err = a.verifier.Verify(tok)
		} else if errors.Is(err, auth.ErrNoToken) && g.hooks.connect != nil {
			err = nil // hooks.go: the connect hook decides
		}
		if err != nil {
			g.m.UpgradeFailed(metrics.UpgradeUnauthorized)
			w.Header().Set("WWW-Authenticate", `Bearer realm="wspush", error="invalid_token"`)
			http.Error(w, "unauthorized: "+err.Error(), http.StatusUnauthorized)
			return nil, netip.Addr{}, false
		}
	}
	ip := admission.RemoteIP(r.RemoteAddr)
	if !a.perIP.Acquire(ip) {
		g.m.UpgradeFailed(metrics.UpgradePerIP)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
		return nil, netip.Addr{}, false
	}
	return grant, ip, true
}

// upgradeFailure names the metrics reason of a failed Upgrade.
func upgradeFailure(err error) string {
	if errors.Is(err, websocket.ErrUpgradeOriginNotAllowed) {
		return metrics.UpgradeBadOrigin
	}
	return metrics.UpgradeBadHandshake
}

// opened records an upgraded connection's grant and address; it runs in
// the upgrade handler, after onOpen.
func (g *Gateway) opened(c *websocket.Conn, grant *auth.Grant, ip netip.Addr) {
	s := sessionOf(c)
	if s == nil {
		g.acc.perIP.Release(ip)
		return
	}
	if g.acc.countsIP && ip.IsValid() || s.x != nil {
		s.extra().ip = ip
	}
	if grant != nil {
		s.extra().grant = grant
		g.acc.users.Add(grant.Sub)
		g.acc.byUser.add(grant.Sub, s.cl)
		s.cl.SetExpiry(grant.Expiry)
	}
}

// reserve takes one of -max-conns for a connection being set up (released
// with g.reserved.Add(-1) if it fails); over the cap it answers 503 and
// gives back ip's per-IP slot.
func (g *Gateway) reserve(w http.ResponseWriter, ip netip.Addr) bool {
	if n := g.reserved.Add(1); g.cfg.MaxConns > 0 && n > int64(g.cfg.MaxConns) {
		g.reserved.Add(-1)
		g.acc.perIP.Release(ip)
		g.m.UpgradeFailed(metrics.UpgradeMaxConns)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server is at its connection limit ("+strconv.Itoa(g.cfg.MaxConns)+")", http.StatusServiceUnavailable)
		return false
	}
	return true
}

// closed gives back what opened took.
func (g *Gateway) closed(c *websocket.Conn) {
	s := sessionOf(c)
	if s == nil {
		return
	}
	if s.x == nil {
		return
	}
	g.acc.perIP.Release(s.x.ip)
	s.x.ip = netip.Addr{}
	if grant := s.x.grant; grant != nil {
		g.acc.users.Remove(grant.Sub)
		g.acc.byUser.remove(grant.Sub, s.cl)
	}
}

// withinRate takes one message from the connection's budget; over it the
// client is closed with 1008 "rate limit" and false is returned.
func (g *Gateway) withinRate(c *websocket.Conn, cl *hub.Client) bool {
	s := sessionOf(c)
	if s == nil || s.msgs.Allow(time.Now().UnixNano(), g.acc.msgLimit) {
		return true
	}
	cl.CloseWith(hub.CloseRateLimit)
	return false
}

// mayPublish takes one pub from the connection's publish budget; over it
// the pub is answered with an error frame "rate_limited" and false is
// returned (the connection stays: -max-msg-rate bounds a client that
// ignores the answer).
func (g *Gateway) mayPublish(c *websocket.Conn, cl *hub.Client, msg *wire.ClientMsg) bool {
	s := sessionOf(c)
	if s == nil || s.extra().pubs.Allow(time.Now().UnixNano(), g.acc.pubLimit) {
		return true
	}
	g.fail(cl, wire.CodeRateLimited, "publishing faster than -max-client-pub-rate allows; retry later", msg.ID)
	return false
}

// permitted checks a sub or pub against the token's patterns, answering a
// refused one with a "forbidden" error frame.
func (g *Gateway) permitted(c *websocket.Conn, cl *hub.Client, msg *wire.ClientMsg) bool {
	s := sessionOf(c)
	if s == nil || s.grant() == nil {
		return true
	}
	grant := s.grant()
	switch msg.Type {
	case wire.TypeSub:
		if !grant.MaySubscribe(msg.Topic) {
			g.fail(cl, wire.CodeForbidden, "your token does not allow subscribing to "+msg.Topic, msg.ID)
			return false
		}
	case wire.TypePub:
		if g.cfg.ClientPublish && !grant.MayPublish(msg.Topic) {
			g.fail(cl, wire.CodeForbidden, "your token does not allow publishing to "+msg.Topic, msg.ID)
			return false
		}
	}
	return true
}

// Users returns the number of distinct authenticated users connected.
func (g *Gateway) Users() int64 { return g.acc.users.Len() }

// AuthEnabled reports whether upgrades need a token.
// With a connect hook, the backend's answer names each client's user.
func (g *Gateway) AuthEnabled() bool { return g.acc.verifier != nil || g.hooks.connect != nil }

// tlsConfig loads the certificate for wss://, or returns nil without one.
func tlsConfig(cfg *Config) (*tls.Config, error) {
	if cfg.TLSCertFile == "" && cfg.TLSKeyFile == "" {
		return nil, nil
	}
	if cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" {
		return nil, errors.New("gateway: tls needs both a certificate and a key")
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
