package main

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/lesismal/nbio/logging"
)

// nbioLogger routes nbio's global logger (package logging: printf-style, at
// four levels) to slog. Only errors are kept, as before: nbio logs every
// engine start and stop at Info, and v1.6.8 logs nothing at Warn.
type nbioLogger struct{ log *slog.Logger }

func (nbioLogger) Debug(string, ...any) {}
func (nbioLogger) Info(string, ...any)  {}
func (nbioLogger) Warn(string, ...any)  {}

func (l nbioLogger) Error(format string, v ...any) {
	l.log.Error("nbio: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}

var nbioLogOnce sync.Once

// routeNBIOLogs sends nbio's log lines to log. nbio's logger is one global
// for the whole process, so the first call wins: run sets it to the
// program's logger before anything starts; start (which tests call
// directly) falls back to slog.Default().
func routeNBIOLogs(log *slog.Logger) {
	nbioLogOnce.Do(func() { logging.SetLogger(nbioLogger{log: log}) })
}
