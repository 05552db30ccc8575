// Package auth verifies the JSON Web Tokens that wspush clients present
// when they upgrade, and turns them into a Grant: who the client is (sub),
// until when (exp), and which topics it may subscribe (topics) and publish
// to (pub). See docs/security.md for the claims and the pattern syntax.
//
// One algorithm is accepted per server, fixed by the key it is given: HS256
// for a shared secret, RS256 for an RSA public key, ES256 for a P-256 public
// key. "none" and every other algorithm are refused, so a token cannot pick
// its own verification (no HS/RS confusion: an RSA public key is never used
// as an HMAC secret).
//
// # Concurrency contract
//
// A Verifier is immutable after New and safe for concurrent use. A Grant is
// immutable. Users is safe for concurrent use (one mutex around a map).
package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretBytes is the shortest HS256 secret accepted (RFC 7518 §3.2: a
// key as long as the hash).
const MinSecretBytes = 32

// MinRSABits is the smallest RSA key accepted.
const MinRSABits = 2048

// MaxTokenBytes bounds a token; longer ones are refused unparsed.
const MaxTokenBytes = 8 << 10

// Config selects how tokens are verified. The zero value turns
// authentication off; Secret and PublicKeyFile are mutually exclusive.
type Config struct {
	// Secret is the HS256 shared secret (at least MinSecretBytes).
	Secret string
	// PublicKeyFile is a PEM file with an RSA (RS256) or P-256 (ES256)
	// public key, as "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE".
	PublicKeyFile string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be among the token's aud.
	Audience string
	// Leeway is the clock skew allowed on exp and nbf (default 0).
	Leeway time.Duration
}

// Enabled reports whether c asks for authentication.
func (c Config) Enabled() bool { return c.Secret != "" || c.PublicKeyFile != "" }

// Errors a token can fail with; Verify wraps them (and jwt's own).
var (
	ErrNoToken     = errors.New("auth: no token (send Authorization: Bearer <jwt> or ?token=<jwt>)")
	ErrNoSubject   = errors.New("auth: token has no sub")
	ErrBadPattern  = errors.New("auth: bad topic pattern")
	ErrTokenTooBig = errors.New("auth: token too long")
)

// Verifier checks tokens with one key and one algorithm.
type Verifier struct {
	alg    string
	key    any
	parser *jwt.Parser
}

// New returns a verifier for cfg, or nil (and no error) when cfg does not
// enable authentication.
func New(cfg Config) (*Verifier, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if cfg.Secret != "" && cfg.PublicKeyFile != "" {
		return nil, errors.New("auth: set a secret or a public key, not both")
	}
	v := &Verifier{}
	if cfg.Secret != "" {
		if len(cfg.Secret) < MinSecretBytes {
			return nil, fmt.Errorf("auth: HS256 secret is %d bytes, want at least %d", len(cfg.Secret), MinSecretBytes)
		}
		v.alg, v.key = jwt.SigningMethodHS256.Alg(), []byte(cfg.Secret)
	} else {
		pemBytes, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth: public key: %w", err)
		}
		if v.alg, v.key, err = parsePublicKey(pemBytes); err != nil {
			return nil, fmt.Errorf("auth: public key %s: %w", cfg.PublicKeyFile, err)
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{v.alg}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// parsePublicKey returns the algorithm and key of a PEM public key.
func parsePublicKey(b []byte) (string, any, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return "", nil, errors.New("no PEM block")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		return "", nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if err != nil {
		return "", nil, err
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return "", nil, fmt.Errorf("RSA key has %d bits, want at least %d", k.N.BitLen(), MinRSABits)
		}
		return jwt.SigningMethodRS256.Alg(), k, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", nil, fmt.Errorf("EC key is on %s, want P-256 (ES256)", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256.Alg(), k, nil
	default:
		return "", nil, fmt.Errorf("unsupported key type %T (want RSA or P-256)", pub)
	}
}

// Alg returns the one algorithm v accepts.
func (v *Verifier) Alg() string { return v.alg }

// claims is the token body wspush reads.
type claims struct {
	jwt.RegisteredClaims
	Topics []string `json:"topics"`
	Pub    []string `json:"pub"`
}

// Grant is what a verified token allows.
type Grant struct {
	Sub    string
	Expiry time.Time
	topics []Pattern
	pub    []Pattern
}

// MaySubscribe reports whether the grant's topics patterns cover topic.
func (g *Grant) MaySubscribe(topic string) bool { return matchAny(g.topics, topic) }

// MayPublish reports whether the grant's pub patterns cover topic.
func (g *Grant) MayPublish(topic string) bool { return matchAny(g.pub, topic) }

// Verify checks a token's signature, algorithm and claims and returns its
// grant. The token needs sub and exp; topics and pub may be absent (then
// the client may subscribe, or publish, to nothing).
func (v *Verifier) Verify(token string) (*Grant, error) {
	if len(token) > MaxTokenBytes {
		return nil, ErrTokenTooBig
	}
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyFor); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if c.Subject == "" {
		return nil, ErrNoSubject
	}
	g := &Grant{Sub: c.Subject, Expiry: c.ExpiresAt.Time}
	var err error
	if g.topics, err = compileAll(c.Topics); err != nil {
		return nil, err
	}
	if g.pub, err = compileAll(c.Pub); err != nil {
		return nil, err
	}
	return g, nil
}

// keyFor returns the configured key; the parser has already refused any
// algorithm but v.alg, and this checks again in case of a library change.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if t.Method == nil || t.Method.Alg() != v.alg {
		return nil, fmt.Errorf("auth: algorithm %v not allowed", t.Header["alg"])
	}
	return v.key, nil
}

// FromRequest returns the token of an upgrade request: the Authorization
// bearer token, else the token query parameter (browsers cannot set headers
// on a WebSocket).
func FromRequest(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", errors.New("auth: Authorization header is not \"Bearer <jwt>\"")
		}
		return strings.TrimSpace(tok), nil
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		return tok, nil
	}
	return "", ErrNoToken
}

func compileAll(src []string) ([]Pattern, error) {
	if len(src) == 0 {
		return nil, nil
	}
	out := make([]Pattern, len(src))
	for i, s := range src {
		p, err := Compile(s)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}
