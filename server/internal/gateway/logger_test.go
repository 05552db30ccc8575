package gateway

import (
	"log/slog"
	"net"
	"strings"
	"testing"

	"wspush/server/internal/hub"
	"wspush/server/internal/metrics"
)

// TestAcceptErrorsGoToTheConfiguredLogger checks that the gateway logs
// through Config.Logger, not the process-wide default.
func TestAcceptErrorsGoToTheConfiguredLogger(t *testing.T) {
	var mine, global lineCounter
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&global, nil)))
	defer slog.SetDefault(old)

	var h *hub.Hub
	m := metrics.New(func() int64 { return h.Len() })
	h, err := hub.New(hub.Config{}, m)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{Addr: "127.0.0.1:0", MaxConns: 10, Logger: slog.New(slog.NewTextHandler(&mine, nil))}, h, nil, m, hub.DefaultMaxUnsent)
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeConn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
	g.ln.init(&errListener{fails: 1, conn: c})
	if got, err := g.ln.Accept(); err != nil || got != c {
		t.Fatalf("Accept: %v, %v; want the connection after the error", got, err)
	}
	mine.mu.Lock()
	defer mine.mu.Unlock()
	global.mu.Lock()
	defer global.mu.Unlock()
	if len(mine.lines) != 1 || !strings.Contains(mine.lines[0], "gateway: accept failed") {
		t.Fatalf("configured logger got %q, want one accept-failure line", mine.lines)
	}
	if len(global.lines) != 0 {
		t.Fatalf("slog.Default() got %q, want nothing", global.lines)
	}
}
