package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/lesismal/nbio/logging"
)

// TestNBIOLogsGoToSlog checks that a started server has nbio's global
// logger writing through slog, errors only.
func TestNBIOLogsGoToSlog(t *testing.T) {
	startServer(t)
	if _, ok := logging.DefaultLogger.(nbioLogger); !ok {
		t.Fatalf("nbio's logger is %T, want nbioLogger", logging.DefaultLogger)
	}
	var out bytes.Buffer
	l := nbioLogger{log: slog.New(slog.NewTextHandler(&out, nil))}
	l.Info("engine %s started", "x")
	l.Error("Accept failed: %v, exit...\n", "boom")
	if got := out.String(); strings.Contains(got, "started") || !strings.Contains(got, `level=ERROR msg="nbio: Accept failed: boom, exit..."`) {
		t.Fatalf("slog got %q", got)
	}
}
