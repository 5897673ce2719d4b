package proxy

import (
	"io"
	"log/slog"
)

// NewLogger returns a slog logger writing JSON lines (format "json") or
// logfmt-style text ("text") at the given level.
func NewLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(&logHandler{Handler: slog.NewTextHandler(w, o), out: w, format: format})
	}
	return slog.New(&logHandler{Handler: slog.NewJSONHandler(w, o), out: w, format: format})
}

// logHandler is the handler of NewLogger's loggers: it remembers their
// writer and format, so that a Server writes its access lines to the same
// place in the same format, through its own queue (accesslog.go).
type logHandler struct {
	slog.Handler
	out    io.Writer
	format string
}

// logOutput returns the writer and format of a logger made by NewLogger.
func logOutput(l *slog.Logger) (io.Writer, string, bool) {
	if h, ok := l.Handler().(*logHandler); ok {
		return h.out, h.format, true
	}
	return nil, "", false
}
