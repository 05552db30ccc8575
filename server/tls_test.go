package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key to
// a temporary directory and returns their paths and a pool that trusts it.
func selfSigned(t *testing.T) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "wspush test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

func TestTLSListener(t *testing.T) {
	certPath, keyPath, pool := selfSigned(t)
	s := startServer(t, "-tls-cert", certPath, "-tls-key", keyPath, "-push-interval", "100ms", "-client-publish")
	wss := "wss://" + s.n.gw.Addr().String() + "/ws"

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: pool}}
	c, _, err := d.Dial(wss, nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer c.Close()
	if m := next(t, c, 5*time.Second); m.Type != wire.TypeWelcome {
		t.Fatalf("first frame %+v", m)
	}
	nextOf(t, c, wire.TypeTick, 2*time.Second)
	// Messages both ways through TLS, including a large one that spans
	// several TLS records.
	big := strings.Repeat("x", 3000)
	subscribe(t, c, `{"type":"sub","topic":"t"}`)
	send(t, c, `{"type":"pub","topic":"t","data":"`+big+`","id":1}`)
	deadline := time.Now().Add(5 * time.Second)
	for got := map[string]bool{}; len(got) < 2; {
		m := next(t, c, time.Until(deadline))
		switch m.Type {
		case wire.TypeTick:
		case wire.TypePublished:
			got[m.Type] = true
		case wire.TypeMsg:
			if string(m.Data) != `"`+big+`"` {
				t.Fatalf("msg data of %d bytes, want %d", len(m.Data), len(big)+2)
			}
			got[m.Type] = true
		default:
			t.Fatalf("unexpected %+v", m)
		}
	}

	// Without the certificate's root, the client refuses the server.
	if _, _, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(wss, nil); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("dial without the root: %v, want a certificate error", err)
	}
	// Plain ws:// to the TLS port gets no upgrade.
	if c, _, err := (&websocket.Dialer{HandshakeTimeout: 2 * time.Second}).Dial(s.ws, nil); err == nil {
		c.Close()
		t.Fatal("plain ws:// upgraded on the TLS listener")
	}
	// The wss client is still served.
	send(t, c, `{"type":"ping","id":7}`)
	nextOf(t, c, wire.TypePong, 2*time.Second)
}
