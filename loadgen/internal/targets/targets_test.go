package targets

import (
	"net"
	"testing"
)

func TestParseSources(t *testing.T) {
	ips, err := ParseSources("127.0.0.2-127.0.0.60")
	if err != nil || len(ips) != 59 || !ips[0].Equal(net.ParseIP("127.0.0.2")) || !ips[58].Equal(net.ParseIP("127.0.0.60")) {
		t.Fatalf("range: %v %v", len(ips), err)
	}
	ips, err = ParseSources("127.0.1.0/30, 127.0.1.1,127.0.0.9")
	if err != nil || len(ips) != 5 || !ips[4].Equal(net.ParseIP("127.0.0.9")) {
		t.Fatalf("cidr+list: %v %v", ips, err)
	}
	if ips, err := ParseSources(""); err != nil || ips != nil {
		t.Fatalf("empty: %v %v", ips, err)
	}
	for _, bad := range []string{"10.0.0.1", "127.0.0.5-127.0.0.1", "127.0.0.1-128.0.0.1", "nope", "::1", "127.0.0.0/8"} {
		if _, err := ParseSources(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPlanSpreads(t *testing.T) {
	p, err := Parse("ws://127.0.0.1:9000-9001/ws?x=1", "127.0.0.2-127.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Endpoints) != 2 || p.Endpoints[1].Addr != "127.0.0.1:9001" || p.Endpoints[0].Path != "/ws?x=1" {
		t.Fatalf("endpoints %+v", p.Endpoints)
	}
	pairs := map[string]int{}
	for i := range 600 {
		pairs[p.Endpoint(i).Addr+" "+p.Source(i).String()]++
	}
	if len(pairs) != 6 {
		t.Fatalf("pairs %v", pairs)
	}
	for k, n := range pairs {
		if n != 100 {
			t.Errorf("%s: %d connections, want 100", k, n)
		}
	}
	if _, err := Parse("ws://10.1.1.1:80/ws", ""); err == nil {
		t.Error("non-loopback target accepted")
	}
	if _, err := Parse("https://127.0.0.1:80/", ""); err == nil {
		t.Error("https scheme accepted")
	}
	if p, err := Parse("http://127.0.0.1:80/sse?topics=a", ""); err != nil || p.Endpoints[0].Path != "/sse?topics=a" {
		t.Errorf("http:// (an SSE stream) refused: %v", err) // -transport sse
	}
}
