package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy"
	"github.com/edgeblock/edgeblock/proxy/config"
	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// flags parses the common -config flag and any extra ones.
func flags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*flag.FlagSet, string, bool) {
	fs := newFlagSet(name, stderr)
	config := fs.String("config", defaultConfig(), "configuration `file` (default: $"+configEnv+", else edgeblock.yaml)")
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
	var logFormat, logLevel, stateFlag string
	_, configFile, ok := flags("serve", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&logFormat, "log-format", "", "json or text (default: log.format of the config, else json)")
		fs.StringVar(&logLevel, "log-level", "", "debug, info, warn or error (default: log.level of the config, else info)")
		stateDirFlag(fs, &stateFlag)
	})
	if !ok {
		return 2
	}
	stateDir := resolveStateDir(stateFlag)
	b, err := reload.LoadBundleForStart(configFile, stateDir, time.Now())
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
	level, err := config.ParseLevel(logLevel)
	if err != nil || (logFormat != "json" && logFormat != "text") {
		fmt.Fprintf(stderr, "edgeblock: bad -log-format %q or -log-level %q\n", logFormat, logLevel)
		return 2
	}
	log := proxy.NewLogger(stderr, logFormat, level)
	proxy.ApplyGC(b.Config.GC, log)
	// The Redis client's own messages (failed dials while Redis is away)
	// go to the log at debug: the fleet's connection state is logged once
	// per change by the reloader.
	fleet.SetClientLogger(func(msg string) { log.Debug("redis client", "event", "fleet_client", "message", msg) })
	switch {
	case len(b.FromSnapshot) > 0:
		log.Error("started from the snapshot of the last applied state: the files on disk (or, in fleet mode, the fleet's Redis) are bad, missing or unreachable; they are watched and applied once good",
			"event", "start_from_snapshot", "parts", b.FromSnapshot, "problems", b.Problems, "state_dir", stateDir,
			"snapshot_written_at", b.Snapshot.WrittenAt, "snapshot_blocklist_sha256", b.Snapshot.Blocklist.SHA256,
			"snapshot_config_sha256", b.Snapshot.Config.SHA256, "rules", b.List.Len())
	case stateDir == "":
		log.Warn("no state directory: the applied state is not snapshotted, so a bad file at the next start stops it (set -state-dir)",
			"event", "snapshot", "result", "off")
	}
	return serve(configFile, b, log)
}

// stateDirFlag defines -state-dir.
func stateDirFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "state-dir", "", "`directory` of the snapshot of the last applied state; \"off\" for none "+
		"(default: $EDGEBLOCK_STATE_DIR, else $STATE_DIRECTORY, else /var/lib/edgeblock if it exists and is writable)")
}

// resolveStateDir returns the state directory: the flag, else
// $EDGEBLOCK_STATE_DIR, else proxy.DefaultStateDir; "off" means none.
func resolveStateDir(flagValue string) string {
	d := flagValue
	if d == "" {
		d = os.Getenv("EDGEBLOCK_STATE_DIR")
	}
	if d == "" {
		d = reload.DefaultStateDir()
	}
	if d == "" || d == "off" {
		return "" // none: never the working directory
	}
	if abs, err := filepath.Abs(d); err == nil {
		d = abs
	}
	return d
}

// serve runs the server until SIGTERM or SIGINT; SIGHUP reloads. SIGTERM
// drains for timeouts.drain, then lets in-flight requests finish within
// timeouts.grace; SIGINT skips the drain; a second signal stops at once.
func serve(config string, b *reload.Bundle, log *slog.Logger) int {
	// Catch the signals before /readyz can say ready, so that a SIGTERM
	// right after that still shuts down gracefully.
	sigs := notifySignals()
	defer signal.Stop(sigs)
	srv, err := proxy.NewServer(log, config, b)
	if err == nil {
		err = srv.Start(b)
	}
	if err != nil {
		log.Error("start failed", "error", err.Error())
		return 1
	}
	return waitForSignals(sigs, srv, started(log, config, b), log)
}

// stopTimeouts are timeouts.drain and timeouts.grace, which only a
// restart changes.
type stopTimeouts struct{ drain, grace time.Duration }

// started logs the start and returns the shutdown timeouts of the
// start-up bundle: the only part of it kept, since holding the bundle
// would keep its config and list alive beside every later one.
func started(log *slog.Logger, config string, b *reload.Bundle) stopTimeouts {
	version, revision := proxy.Version()
	log.Info("edgeblock started", "event", "start", "version", version, "revision", revision,
		"config", config, "routes", len(b.Config.Routes), "rules", b.List.Len(), "state_dir", b.StateDir,
		"from_snapshot", b.FromSnapshot)
	return stopTimeouts{drain: *b.Config.Timeouts.Drain, grace: b.Config.Timeouts.Grace}
}

// notifySignals returns a channel that receives SIGHUP, SIGUSR1, SIGTERM
// and SIGINT. Call it before the server can say ready, so that a SIGTERM
// right after that still shuts down gracefully.
func notifySignals() chan os.Signal {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	return sigs
}

// waitForSignals runs a started server until SIGTERM or SIGINT on sigs;
// SIGHUP reloads; SIGUSR1 reopens log.access_file (logrotate).
func waitForSignals(sigs chan os.Signal, srv *proxy.Server, stop stopTimeouts, log *slog.Logger) int {
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			log.Info("reload requested", "event", "sighup")
			srv.Reloader().Reload("sighup")
			continue
		}
		if sig == syscall.SIGUSR1 {
			if err := srv.ReopenAccessLog(); err != nil {
				log.Error("access log not reopened; lines go to the old file", "event", "access_log_reopen", "error", err.Error())
			} else {
				log.Info("access log reopened", "event", "access_log_reopen")
			}
			continue
		}
		drain, grace := stop.drain, stop.grace
		if sig == syscall.SIGINT {
			drain = 0 // Ctrl-C at a terminal: no load balancer to tell
		}
		log.Info("shutting down", "event", "shutdown", "signal", sig.String(), "drain", drain.String(), "grace", grace.String())
		// A second SIGTERM or SIGINT cuts the drain and the grace short.
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for {
				select {
				case sig := <-sigs:
					if sig == syscall.SIGHUP || sig == syscall.SIGUSR1 {
						continue
					}
					log.Warn("second signal: stopping now", "event", "shutdown_now", "signal", sig.String())
					cancel()
				case <-ctx.Done():
				}
				return
			}
		}()
		err := srv.Stop(ctx, drain, grace)
		cancel()
		if err != nil {
			log.Warn("shutdown grace ran out; connections closed", "error", err.Error())
		}
		log.Info("stopped", "event", "stop")
		return 0
	}
	return 0
}

// checkJSON is the output of check -json.
type checkJSON struct {
	// OK is true when the exit code is 0.
	OK        bool   `json:"ok"`
	Config    string `json:"config"`
	Routes    int    `json:"routes"`
	Blocklist string `json:"blocklist,omitempty"`
	Rules     int    `json:"rules"`
	SHA256    string `json:"sha256,omitempty"`
	// Problems are the errors, each "file:line: field: message"; Warnings
	// the same for what does not fail the check.
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings"`
	// Running compares the list with the one in effect; null when there
	// is none to compare with (Source then says why).
	Running *checkRunning `json:"running"`
	Source  string        `json:"source,omitempty"`
	// Changes are the rules the file adds, removes and changes against
	// the running list (with -diff).
	Changes []blocklist.HistoryChange `json:"changes,omitempty"`
}

// checkRunning is check -json's comparison with the running list.
type checkRunning struct {
	Source string `json:"source"`
	// InEffect is true when the list is the one in effect.
	InEffect bool `json:"in_effect"`
	// Dropped of Total block rules in effect the list drops; Refused is
	// true when the running edge would refuse it (blocklist.max_drop).
	Dropped int  `json:"dropped"`
	Total   int  `json:"total"`
	Refused bool `json:"refused"`
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	var diff, asJSON bool
	var adminFlag, stateFlag string
	_, config, ok := flags("check", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&diff, "diff", false, "print the rules that would be added, removed and changed against the running list")
		fs.StringVar(&adminFlag, "admin", "", "admin listener `address` of the running edge (default: listen.admin of the config)")
		stateDirFlag(fs, &stateFlag)
		jsonFlag(fs, &asJSON)
	})
	if !ok {
		return 2
	}
	out := checkJSON{Config: config, Problems: []string{}, Warnings: []string{}}
	finish := func(code int) int {
		if asJSON {
			out.OK = code == 0
			writeJSON(stdout, out)
		}
		return code
	}
	b, err := reload.LoadBundle(config)
	if err != nil {
		if asJSON {
			out.Problems = strings.Split(err.Error(), "\n")
			return finish(1)
		}
		printProblems(stderr, err)
		return 1
	}
	warnings := append(slices.Clone(b.Config.Warnings), coveredRoutes(b)...)
	out.Warnings = append(out.Warnings, warnings...)
	out.Routes, out.Blocklist, out.Rules, out.SHA256 = len(b.Config.Routes), b.List.File(), b.List.Len(), b.List.SHA256()
	if !asJSON {
		for _, w := range warnings {
			fmt.Fprintln(stderr, "warning: "+w)
		}
		tmpl := "built-in pages"
		if b.Config.Pages.Template != "" {
			tmpl = "template " + b.Config.Pages.Template
		}
		for _, k := range slices.Sorted(maps.Keys(b.Config.Pages.Templates)) {
			tmpl += fmt.Sprintf(", %s template %s", k, b.Config.Pages.Templates[k])
		}
		tmpl += fmt.Sprintf(" in %d languages (default %s)", len(b.Renderer.Languages()), b.Renderer.DefaultLanguage())
		fmt.Fprintf(stdout, "ok: %s: %d routes; %s: %d rules (sha256 %.12s); %s\n",
			config, len(b.Config.Routes), b.List.File(), b.List.Len(), b.List.SHA256(), tmpl)
	}

	running, source := runningList(b.Config, adminFlag, resolveStateDir(stateFlag))
	if running == nil {
		out.Source = source
		if !asJSON {
			fmt.Fprintf(stdout, "check: no running list to compare with (%s)\n", source)
		}
		if diff {
			return finish(1)
		}
		return finish(0)
	}
	code := 0
	now := time.Now()
	d, n := b.List.DroppedBlocks(running, now)
	out.Running = &checkRunning{Source: source, InEffect: running.SHA256() == b.List.SHA256(), Dropped: d, Total: n}
	if err := blocklist.CheckDrop(b.List, running, b.Config.Blocklist.MaxDrop, now); err != nil {
		var de *blocklist.DropError
		errors.As(err, &de)
		out.Running.Refused, out.Running.Dropped, out.Running.Total = true, de.Dropped, de.Total
		if !asJSON {
			fmt.Fprintf(stdout, "check: would drop %d of %d block rules (%s) against %s: not applied by the running edge unless the file has %q\n",
				de.Dropped, de.Total, dropShare(de), source, blocklist.AllowDropMarker)
		}
		code = 1
	} else if asJSON {
	} else if running.SHA256() == b.List.SHA256() {
		fmt.Fprintf(stdout, "check: the list is the one in effect (%s)\n", source)
	} else {
		fmt.Fprintf(stdout, "check: drops %d of %d block rules against %s: within max_drop %g\n", d, n, source, b.Config.Blocklist.MaxDrop)
	}
	if diff && asJSON {
		out.Changes = blocklist.HistoryChanges(b.List, running)
	} else if diff {
		printDiff(stdout, b.List, running, source)
	}
	return finish(code)
}

// coveredRoutes returns a warning for each route whose host a block rule
// in effect covers: its visitors get the block page, not the origin, so
// the route is dead weight or the rule a mistake.
func coveredRoutes(b *reload.Bundle) []string {
	var out []string
	now := time.Now()
	for i, r := range b.Config.Routes {
		host, wild := strings.CutPrefix(r.Host, "*.")
		host, err := blocklist.Normalize(host)
		if err != nil {
			continue
		}
		probe, what := host, "its visitors get the block page, not the origin"
		if wild {
			probe, what = "edgeblock-probe."+host, "every name under it gets the block page, not the origin"
		}
		rule, ok := b.List.Match(probe, now)
		if !ok || rule.Mode != blocklist.ModeBlock || wild && rule.Name != host && !strings.HasSuffix(host, "."+rule.Name) {
			continue
		}
		out = append(out, fmt.Sprintf("%s: routes[%d].host: %q is covered by the block rule %s (%s:%d): %s; remove the route or unblock the name",
			b.Config.Path, i, r.Host, rule.Pattern(), b.List.File(), rule.Line, what))
	}
	return out
}

func dropShare(e *blocklist.DropError) string {
	if e.Dropped == e.Total {
		return "all of them"
	}
	return fmt.Sprintf("%.0f%% > max_drop %g%%", 100*float64(e.Dropped)/float64(e.Total), 100*e.MaxDrop)
}

// explainJSON is the output of explain -json: the explanation and which
// answered ("the running edge at ADDR" or "the files (why)").
type explainJSON struct {
	*proxy.Explanation
	Source string `json:"source"`
}

func runExplain(args []string, stdout, stderr io.Writer) int {
	var adminFlag, country string
	var asJSON bool
	fs, configFile, ok := flags("explain", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&adminFlag, "admin", "", "admin listener `address` of the running edge (default: listen.admin of the config)")
		fs.StringVar(&country, "country", "", "the visitor's `country` (ISO 3166-1 alpha-2, such as FR), for rules scoped to countries (default: unknown)")
		jsonFlag(fs, &asJSON)
	})
	if !ok {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: edgeblock explain -config FILE [-admin ADDR] [-country CC] HOST")
		return 2
	}
	if country != "" {
		if _, ok := blocklist.Country(country); !ok {
			fmt.Fprintf(stderr, "edgeblock explain: -country %q: not an ISO 3166-1 alpha-2 country code (such as FR)\n", country)
			return 2
		}
	}
	cfg, err := config.LoadConfig(configFile)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	addr := adminAddr(cfg, adminFlag)
	why := "the admin listener is off in the config"
	if addr != "" {
		e, err := askExplain(cfg, addr, fs.Arg(0), country)
		if err == nil && asJSON {
			writeJSON(stdout, explainJSON{e, "the running edge at " + addr})
			return 0
		}
		if err == nil {
			fmt.Fprintf(stdout, "source: the running edge at %s\n", addr)
			fmt.Fprint(stdout, e.Text())
			return 0
		}
		why = fmt.Sprintf("no running edge answered at %s: %v", addr, err)
	}
	b, err := reload.LoadBundle(configFile)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	e := proxy.ExplainCountry(b, fs.Arg(0), country, time.Now())
	if asJSON {
		writeJSON(stdout, explainJSON{e, "the files (" + why + ")"})
		return 0
	}
	fmt.Fprintf(stdout, "source: the files (%s)\n", why)
	fmt.Fprint(stdout, e.Text())
	return 0
}

func runCARoot(args []string, stdout, stderr io.Writer) int {
	_, configFile, ok := flags("ca-root", args, stderr, nil)
	if !ok {
		return 2
	}
	cfg, err := config.LoadConfig(configFile)
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
