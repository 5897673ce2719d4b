package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/edgeblock/edgeblock/proxy"
)

// flags parses the common -config flag and any extra ones.
func flags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*flag.FlagSet, string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "edgeblock.yaml", "configuration `file`")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, "", false
	}
	return fs, *config, true
}

// printProblems writes every problem of err on its own line.
func printProblems(w io.Writer, err error) {
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintln(w, line)
	}
}

func runServe(args []string, stdout, stderr io.Writer) int {
	var logFormat, logLevel string
	_, config, ok := flags("serve", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&logFormat, "log-format", "", "json or text (default: log.format of the config, else json)")
		fs.StringVar(&logLevel, "log-level", "", "debug, info, warn or error (default: log.level of the config, else info)")
	})
	if !ok {
		return 2
	}
	b, err := proxy.LoadBundle(config)
	if err != nil {
		printProblems(stderr, err)
		fmt.Fprintln(stderr, "edgeblock: not started: fix the problems above")
		return 1
	}
	if logFormat == "" {
		logFormat = b.Config.Log.Format
	}
	if logLevel == "" {
		logLevel = b.Config.Log.Level
	}
	level, err := proxy.ParseLevel(logLevel)
	if err != nil || (logFormat != "json" && logFormat != "text") {
		fmt.Fprintf(stderr, "edgeblock: bad -log-format %q or -log-level %q\n", logFormat, logLevel)
		return 2
	}
	log := proxy.NewLogger(stderr, logFormat, level)
	return serve(config, b, log)
}

// serve runs the server until SIGTERM or SIGINT; SIGHUP reloads.
func serve(config string, b *proxy.Bundle, log *slog.Logger) int {
	srv, err := proxy.NewServer(log, config, b)
	if err == nil {
		err = srv.Start(b)
	}
	if err != nil {
		log.Error("start failed", "error", err.Error())
		return 1
	}
	return waitForSignals(srv, config, b, log)
}

// waitForSignals runs a started server until SIGTERM or SIGINT; SIGHUP
// reloads.
func waitForSignals(srv *proxy.Server, config string, b *proxy.Bundle, log *slog.Logger) int {
	version, revision := proxy.Version()
	log.Info("edgeblock started", "event", "start", "version", version, "revision", revision,
		"config", config, "routes", len(b.Config.Routes), "rules", b.List.Len())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			log.Info("reload requested", "event", "sighup")
			srv.Reloader().Reload("sighup")
			continue
		}
		grace := b.Config.Timeouts.Grace
		log.Info("shutting down", "event", "shutdown", "signal", sig.String(), "grace", grace.String())
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		err := srv.Shutdown(ctx)
		cancel()
		if err != nil {
			log.Warn("shutdown grace ran out; connections closed", "error", err.Error())
		}
		log.Info("stopped", "event", "stop")
		return 0
	}
	return 0
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	_, config, ok := flags("check", args, stderr, nil)
	if !ok {
		return 2
	}
	b, err := proxy.LoadBundle(config)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	for _, w := range b.Config.Warnings {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	tmpl := "built-in page"
	if b.Config.Pages.Template != "" {
		tmpl = "template " + b.Config.Pages.Template
	}
	fmt.Fprintf(stdout, "ok: %s: %d routes; %s: %d rules (sha256 %.12s); %s\n",
		config, len(b.Config.Routes), b.List.File(), b.List.Len(), b.List.SHA256(), tmpl)
	return 0
}

func runExplain(args []string, stdout, stderr io.Writer) int {
	fs, config, ok := flags("explain", args, stderr, nil)
	if !ok {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: edgeblock explain -config FILE HOST")
		return 2
	}
	b, err := proxy.LoadBundle(config)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	fmt.Fprint(stdout, proxy.Explain(b, fs.Arg(0), time.Now()))
	return 0
}

func runCARoot(args []string, stdout, stderr io.Writer) int {
	_, config, ok := flags("ca-root", args, stderr, nil)
	if !ok {
		return 2
	}
	cfg, err := proxy.LoadConfig(config)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	if cfg.TLS.Mode != "internal" {
		fmt.Fprintf(stderr, "edgeblock: tls.mode is %q; ca-root needs internal\n", cfg.TLS.Mode)
		return 1
	}
	pem, err := proxy.InternalRootPEM(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	stdout.Write(pem)
	return 0
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	version, revision := proxy.Version()
	fmt.Fprintf(stdout, "edgeblock %s (revision %s, %s %s/%s)\n", version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
