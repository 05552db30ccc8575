package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

type tokenOpts struct {
	sub    string
	exp    time.Time
	topics []string
	pub    []string
}

func mapClaims(o tokenOpts) jwt.MapClaims {
	c := jwt.MapClaims{}
	if o.sub != "" {
		c["sub"] = o.sub
	}
	if !o.exp.IsZero() {
		c["exp"] = o.exp.Unix()
	}
	if o.topics != nil {
		c["topics"] = o.topics
	}
	if o.pub != nil {
		c["pub"] = o.pub
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, key any, o tokenOpts) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, mapClaims(o)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hsToken(t *testing.T, o tokenOpts) string {
	return sign(t, jwt.SigningMethodHS256, []byte(testSecret), o)
}

// dialAuth dials with a bearer token ("" for none) and returns the HTTP
// status of a refused upgrade (0 when it succeeded).
func dialAuth(t *testing.T, url, token string, hdr http.Header) (*websocket.Conn, int) {
	t.Helper()
	if hdr == nil {
		hdr = http.Header{}
	}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		resp.Body.Close()
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { c.Close() })
	return c, 0
}

func welcomed(t *testing.T, c *websocket.Conn) {
	t.Helper()
	if m := next(t, c, 5*time.Second); m.Type != wire.TypeWelcome {
		t.Fatalf("first frame %+v, want welcome", m)
	}
}

func statNum(t *testing.T, s *testServer, group, key string) float64 {
	t.Helper()
	st := stats(t, s)
	if group == "" {
		v, _ := st[key].(float64)
		return v
	}
	g, _ := st[group].(map[string]any)
	v, _ := g[key].(float64)
	return v
}

func TestJWTRequiredHS256(t *testing.T) {
	s := startServer(t, "-jwt-secret", testSecret, "-push-interval", "100ms")
	hour := time.Now().Add(time.Hour)
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, tokenOpts{sub: "mallory", exp: hour})
	otherKey := sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), tokenOpts{sub: "mallory", exp: hour})
	hs512 := sign(t, jwt.SigningMethodHS512, []byte(testSecret), tokenOpts{sub: "mallory", exp: hour})
	refused := map[string]string{
		"no token":      "",
		"garbage":       "not.a.jwt",
		"alg none":      noneTok,
		"other secret":  otherKey,
		"HS512":         hs512,
		"expired":       hsToken(t, tokenOpts{sub: "ann", exp: time.Now().Add(-time.Minute)}),
		"no exp":        hsToken(t, tokenOpts{sub: "ann"}),
		"no sub":        hsToken(t, tokenOpts{exp: hour}),
		"bad pattern":   hsToken(t, tokenOpts{sub: "ann", exp: hour, topics: []string{"a.>.b"}}),
		"tampered body": tamper(t, hsToken(t, tokenOpts{sub: "ann", exp: hour, topics: []string{"a"}})),
	}
	for name, tok := range refused {
		if _, status := dialAuth(t, s.ws, tok, nil); status != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401", name, status)
		}
	}
	if n := statNum(t, s, "upgrade_failures", "unauthorized"); n != float64(len(refused)) {
		t.Errorf("upgrade_failures.unauthorized = %v, want %d", n, len(refused))
	}
	if s.n.hub.Len() != 0 {
		t.Fatalf("%d clients registered after refused upgrades", s.n.hub.Len())
	}

	// A valid token, as a header or (for browsers) a query parameter; users
	// counts distinct subs.
	c1, status := dialAuth(t, s.ws, hsToken(t, tokenOpts{sub: "ann", exp: hour}), nil)
	if status != 0 {
		t.Fatalf("valid token: HTTP %d", status)
	}
	welcomed(t, c1)
	c2, _ := dialAuth(t, s.ws+"?token="+hsToken(t, tokenOpts{sub: "ann", exp: hour}), "", nil)
	if c2 == nil {
		t.Fatal("valid ?token= refused")
	}
	welcomed(t, c2)
	c3, _ := dialAuth(t, s.ws, hsToken(t, tokenOpts{sub: "bob", exp: hour}), nil)
	welcomed(t, c3)
	nextOf(t, c3, wire.TypeTick, 2*time.Second)
	eventually(t, 5*time.Second, "3 connections, 2 users", func() bool {
		return statNum(t, s, "", "users") == 2 && statNum(t, s, "", "connections") == 3
	})
	c3.Close()
	eventually(t, 5*time.Second, "bob gone from users", func() bool { return statNum(t, s, "", "users") == 1 })
}

// tamper changes the token's payload, keeping its signature.
func tamper(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatal("not a JWT")
	}
	body := jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix(), "topics": []string{">"}}
	raw, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, body).SigningString()
	return raw + "." + parts[2]
}

func TestJWTTopicAndPublishPatterns(t *testing.T) {
	s := startServer(t, "-jwt-secret", testSecret, "-push-interval", "0", "-client-publish")
	tok := hsToken(t, tokenOpts{sub: "ann", exp: time.Now().Add(time.Hour),
		topics: []string{"news.>", "user.ann", "room-*.chat"}, pub: []string{"room-*.chat"}})
	c, status := dialAuth(t, s.ws, tok, nil)
	if status != 0 {
		t.Fatalf("HTTP %d", status)
	}
	welcomed(t, c)
	for _, topic := range []string{"news.eu", "news.eu.fr", "user.ann", "room-7.chat"} {
		subscribe(t, c, `{"type":"sub","topic":"`+topic+`"}`)
	}
	for _, topic := range []string{"news", "user.bob", "room-7.chat.x", "secret"} {
		send(t, c, `{"type":"sub","topic":"`+topic+`","id":1}`)
		if m := nextOf(t, c, wire.TypeError, 2*time.Second); m.Code != wire.CodeForbidden {
			t.Fatalf("sub %s: %+v, want forbidden", topic, m)
		}
	}
	send(t, c, `{"type":"pub","topic":"news.eu","data":1,"id":2}`)
	if m := nextOf(t, c, wire.TypeError, 2*time.Second); m.Code != wire.CodeForbidden {
		t.Fatalf("pub outside pub patterns: %+v", m)
	}
	send(t, c, `{"type":"pub","topic":"room-7.chat","data":1,"id":3}`)
	for got := map[string]bool{}; len(got) < 2; {
		m := next(t, c, 2*time.Second)
		if m.Type != wire.TypePublished && m.Type != wire.TypeMsg {
			t.Fatalf("pub inside patterns: %+v", m)
		}
		got[m.Type] = true
	}
	// Forbidden requests are not bad messages: the connection stays.
	send(t, c, `{"type":"ping","id":4}`)
	if m := next(t, c, 2*time.Second); m.Type != wire.TypePong {
		t.Fatalf("%+v, want pong", m)
	}
}

func TestJWTExpiryClosesTheConnection(t *testing.T) {
	s := startServer(t, "-jwt-secret", testSecret, "-push-interval", "100ms")
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second) // JWT exp has 1 s resolution
	if time.Until(exp) < 800*time.Millisecond {
		exp = exp.Add(time.Second)
	}
	c, status := dialAuth(t, s.ws, hsToken(t, tokenOpts{sub: "ann", exp: exp}), nil)
	if status != 0 {
		t.Fatalf("HTTP %d", status)
	}
	welcomed(t, c)
	nextOf(t, c, wire.TypeTick, 2*time.Second) // alive before expiry
	code, reason := closeCode(t, c, 5*time.Second)
	closedAt := time.Now()
	if code != int(wire.ClosePolicy) || reason != "token expired" {
		t.Fatalf("closed with %d %q, want 1008 \"token expired\"", code, reason)
	}
	// At expiry, give or take the wheel's visit period (100 ms here) and the
	// hub's coarse clock.
	if early := exp.Sub(closedAt); early > 50*time.Millisecond {
		t.Fatalf("closed %v before the token expired", early)
	}
	if late := closedAt.Sub(exp); late > time.Second {
		t.Fatalf("closed %v after the token expired", late)
	}
	eventually(t, 5*time.Second, "closed counted", func() bool { return statNum(t, s, "closed", "token_expired") == 1 })
}

func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJWTPublicKeysAndNoAlgorithmConfusion(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	hour := time.Now().Add(time.Hour)
	claims := tokenOpts{sub: "ann", exp: hour}

	rsaPath := writePEM(t, "PUBLIC KEY", rsaDER)
	rsaPEM, _ := os.ReadFile(rsaPath)
	s := startServer(t, "-jwt-public-key", rsaPath)
	if c, status := dialAuth(t, s.ws, sign(t, jwt.SigningMethodRS256, rsaKey, claims), nil); status != 0 {
		t.Fatalf("RS256: HTTP %d", status)
	} else {
		welcomed(t, c)
	}
	for name, tok := range map[string]string{
		// The classic confusion: the public key (which anyone may have) as
		// an HMAC secret.
		"HS256 keyed with the public key": sign(t, jwt.SigningMethodHS256, rsaPEM, claims),
		"HS256 keyed with its DER":        sign(t, jwt.SigningMethodHS256, rsaDER, claims),
		"RS512 with the right key":        sign(t, jwt.SigningMethodRS512, rsaKey, claims),
		"ES256 with another key":          sign(t, jwt.SigningMethodES256, ecKey, claims),
		"none":                            sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims),
	} {
		if _, status := dialAuth(t, s.ws, tok, nil); status != http.StatusUnauthorized {
			t.Errorf("RS256 server, %s: HTTP %d, want 401", name, status)
		}
	}

	es := startServer(t, "-jwt-public-key", writePEM(t, "PUBLIC KEY", ecDER))
	if c, status := dialAuth(t, es.ws, sign(t, jwt.SigningMethodES256, ecKey, claims), nil); status != 0 {
		t.Fatalf("ES256: HTTP %d", status)
	} else {
		welcomed(t, c)
	}
	if _, status := dialAuth(t, es.ws, sign(t, jwt.SigningMethodRS256, rsaKey, claims), nil); status != http.StatusUnauthorized {
		t.Errorf("ES256 server, RS256 token: HTTP %d, want 401", status)
	}

	// Keys the server must refuse to start with.
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakDER, _ := x509.MarshalPKIXPublicKey(&weak.PublicKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	for name, path := range map[string]string{"RSA 1024": writePEM(t, "PUBLIC KEY", weakDER),
		"P-384": writePEM(t, "PUBLIC KEY", p384DER), "missing": filepath.Join(t.TempDir(), "nope.pem")} {
		cfg, err := parseConfig([]string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-jwt-public-key", path}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := start(cfg); err == nil {
			n.shutdown(cfg)
			t.Errorf("%s: server started", name)
		}
	}
	for _, args := range [][]string{{"-jwt-secret", "short"}, {"-jwt-secret", testSecret, "-jwt-public-key", rsaPath}} {
		if _, err := parseConfig(args, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestAdminToken(t *testing.T) {
	const token = "s3cret-admin-token"
	s := startServer(t, "-admin-token", token)
	do := func(method, path, bearer string) int {
		req, _ := http.NewRequest(method, s.admin+path, strings.NewReader(`{"topic":"a","data":1}`))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do("GET", "/healthz", ""); code != 200 {
		t.Fatalf("/healthz without token: %d", code)
	}
	for _, r := range [][2]string{{"GET", "/v1/stats"}, {"GET", "/metrics"}, {"GET", "/debug/pprof/"},
		{"POST", "/v1/publish"}, {"GET", "/v1/topics"}, {"GET", "/healthz/../v1/stats"}} {
		for _, bad := range []string{"", "wrong", token + "x", strings.ToUpper(token)} {
			if code := do(r[0], r[1], bad); code != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: %d, want 401", r[0], r[1], bad, code)
			}
		}
		if r[1] == "/healthz/../v1/stats" {
			continue
		}
		if code := do(r[0], r[1], token); code != 200 {
			t.Errorf("%s %s with the token: %d", r[0], r[1], code)
		}
	}
	// No token and a non-loopback admin address: configuration error.
	if _, err := parseConfig([]string{"-admin-addr", "0.0.0.0:0"}, func(string) string { return "" }, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "admin-token") {
		t.Fatalf("non-loopback admin without token: %v", err)
	}
	if _, err := parseConfig([]string{"-admin-addr", ":8081"}, func(k string) string {
		if k == "WSPUSH_ADMIN_TOKEN" {
			return token
		}
		return ""
	}, io.Discard); err != nil {
		t.Fatalf("non-loopback admin with a token from the environment: %v", err)
	}
}

// TestNonLoopbackAdminWithoutTokenExits2 runs the real binary.
func TestNonLoopbackAdminWithoutTokenExits2(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "wspush")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-admin-addr", "0.0.0.0:0")
	cmd.Env = []string{} // no WSPUSH_ADMIN_TOKEN from the environment
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2; output %q", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "-admin-token") {
		t.Fatalf("output %q, want one line naming -admin-token", out)
	}
}
