package reload

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/admin"
	"github.com/edgeblock/edgeblock/proxy/config"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// AuditLimit bounds how many added, removed and changed rules one audit
// line names, of each; the totals are always given.
const AuditLimit = 50

// Bundle is a loaded config with its blocklist and page renderer.
type Bundle struct {
	Config   *config.Config
	List     *blocklist.List
	Renderer *pages.Renderer
	// TemplateSHA256 is the hash of the page template file, if any.
	TemplateSHA256 string
	// pagesSum is pageFilesSum of the config when the renderer was built.
	pagesSum string

	// StateDir is where the Reloader snapshots every applied state (see
	// LoadBundleForStart); empty means no snapshots.
	StateDir string
	// FromSnapshot names the parts (PartConfig, PartTemplate,
	// PartBlocklist) that LoadBundleForStart took from the snapshot, and
	// Problems says why, one problem per line; Snapshot is the manifest
	// of that snapshot. All are empty when the files were used.
	FromSnapshot []string
	Problems     []string
	Snapshot     *Snapshot
	partErrs     map[string]error

	// Fleet is the fleet version List is, with blocklist.source fleet
	// (Content left out); nil otherwise, and when the list came from a
	// snapshot.
	Fleet *fleet.Version

	// raw is the content of the files as read, for the first snapshot;
	// the Reloader drops it once written.
	raw *rawFiles
}

// rawFiles is the content a Bundle was loaded from.
type rawFiles struct {
	config, template, list []byte
}

// LoadBundle loads the config at path, the blocklist and the page template
// it names, and checks them. The error lists every problem found, each with
// its file and line where known.
func LoadBundle(path string) (*Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &config.ConfigError{Problems: []string{err.Error()}}
	}
	cfg, err := config.ParseConfig(path, data)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Config: cfg, raw: &rawFiles{config: data}}
	var errs []error
	b.pagesSum = pageFilesSum(cfg)
	if b.Renderer, b.TemplateSHA256, b.raw.template, err = LoadRenderer(cfg); err != nil {
		errs = append(errs, err)
	}
	if b.List, b.raw.list, b.Fleet, err = loadList(cfg); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b, nil
}

// loadList reads the blocklist the config names: the file, or with
// blocklist.source fleet the version published in the fleet's Redis
// (then with its version's metadata, Content left out). It returns the
// content read even when it does not parse.
func loadList(cfg *config.Config) (*blocklist.List, []byte, *fleet.Version, error) {
	if cfg.FromFleet() {
		return loadFleetList(cfg)
	}
	data, err := os.ReadFile(cfg.Blocklist.File)
	if err != nil {
		return nil, nil, nil, listError(cfg, err)
	}
	l, err := blocklist.Parse(cfg.Blocklist.File, data)
	return l, data, nil, err
}

// listError names the config field and line for errors that are not
// already file:line problems (a missing or unreadable file).
func listError(cfg *config.Config, err error) error {
	var pe *blocklist.ParseError
	if errors.As(err, &pe) {
		return err
	}
	return cfg.FileError([]any{"blocklist", "file"}, err)
}

// LoadRenderer reads the page templates and translation files the config
// names and returns the renderer, with the hash and content of
// pages.template (the file snapshots keep). Every page is checked in every
// language; an error names the config field and the file.
func LoadRenderer(cfg *config.Config) (*pages.Renderer, string, []byte, error) {
	o := pageOptions(cfg)
	sum := ""
	var data []byte
	if cfg.Pages.Template != "" {
		var err error
		data, err = os.ReadFile(cfg.Pages.Template)
		if err != nil {
			return nil, "", nil, cfg.FileError([]any{"pages", "template"}, err)
		}
		o.Template, o.TemplateFile = string(data), cfg.Pages.Template
		sum = HashOf(data)
	}
	var errs []error
	for k, f := range cfg.Pages.Templates {
		text, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, cfg.FileError([]any{"pages", "templates", k}, err))
			continue
		}
		o.Templates[k] = pages.Template{Text: string(text), File: f}
	}
	if dir := cfg.Pages.LanguagesDir; dir != "" {
		files, err := languageFiles(dir)
		if err != nil {
			errs = append(errs, cfg.FileError([]any{"pages", "languages_dir"}, err))
		}
		o.Languages = files
	}
	if len(errs) > 0 {
		return nil, "", nil, errors.Join(errs...)
	}
	r, err := pages.NewRenderer(o)
	if err != nil {
		return nil, "", nil, pagesError(cfg, err)
	}
	return r, sum, data, err
}

// pagesError gives a renderer's error the config field and line it comes
// from.
func pagesError(cfg *config.Config, err error) error {
	var te *pages.TemplateError
	switch {
	case errors.As(err, &te):
		field := []any{"pages", "templates", te.Key}
		if te.Key == "block" && cfg.Pages.Template != "" {
			field = []any{"pages", "template"}
		}
		return cfg.FileError(field, fmt.Errorf("%s: %w", te.File, te.Err))
	case strings.HasPrefix(err.Error(), "pages.default_language "):
		return cfg.FileError([]any{"pages", "default_language"}, errors.New(strings.TrimPrefix(err.Error(), "pages.default_language ")))
	}
	return cfg.FileError([]any{"pages", "languages_dir"}, err)
}

// pageOptions returns the renderer options the config sets, without the
// files it names.
func pageOptions(cfg *config.Config) pages.Options {
	o := pages.Options{BlockedBy: cfg.Blocklist.BlockedBy, Operator: cfg.Pages.Operator,
		Contact: cfg.Pages.Contact, Appeal: cfg.Pages.Appeal, DefaultLanguage: cfg.Pages.DefaultLanguage,
		Templates: map[string]pages.Template{}}
	if cfg.Pages.RetryAfter != nil {
		o.RetryAfter = *cfg.Pages.RetryAfter
	}
	return o
}

// languageFiles reads the *.json files of dir.
func languageFiles(dir string) ([]pages.LanguageFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []pages.LanguageFile
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		name := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, pages.LanguageFile{Name: name, Data: data})
	}
	return out, nil
}

// pageFilesSum hashes the page files the config names besides
// pages.template (templates and translation files), so that a reload sees
// when one of them changed.
func pageFilesSum(cfg *config.Config) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(cfg.Pages.Templates)) {
		data, err := os.ReadFile(cfg.Pages.Templates[k])
		fmt.Fprintf(h, "%s %x %v\n", k, sha256.Sum256(data), err != nil)
	}
	if dir := cfg.Pages.LanguagesDir; dir != "" {
		files, err := languageFiles(dir)
		fmt.Fprintf(h, "dir %v\n", err != nil)
		for _, f := range files {
			fmt.Fprintf(h, "%s %x\n", f.Name, sha256.Sum256(f.Data))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func HashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// FileStatus is the reload state of one file, for GET /blocklist.
type FileStatus struct {
	File     string    `json:"file"`
	SHA256   string    `json:"sha256"`
	Rules    *int      `json:"rules,omitempty"`
	Routes   *int      `json:"routes,omitempty"`
	LoadedAt time.Time `json:"loaded_at"`
	// FromSnapshot is set while what is in effect came from the
	// snapshot at start.
	FromSnapshot bool `json:"from_snapshot,omitempty"`
	// Errors are the problems of the last attempt to read the file, one
	// per problem; empty once the file is read and in effect again.
	Errors []statusError `json:"errors"`
	// LastError is Errors in one string, one problem per line;
	// ErrorAt is when it happened.
	LastError string     `json:"last_error,omitempty"`
	ErrorAt   *time.Time `json:"last_error_at,omitempty"`
}

// statusError is one problem in GET /blocklist's errors.
type statusError struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
}

// maxStatusErrors bounds the errors GET /blocklist lists per file; the
// last entry then says how many more there are.
const maxStatusErrors = 100

// setError records err, one entry per line of its text.
func (st *FileStatus) setError(now time.Time, err error) {
	st.LastError, st.ErrorAt = err.Error(), &now
	st.Errors = st.Errors[:0:0]
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		if i == maxStatusErrors-1 && len(lines) > maxStatusErrors {
			st.Errors = append(st.Errors, statusError{At: now, Error: fmt.Sprintf("... and %d more problems", len(lines)-i)})
			break
		}
		st.Errors = append(st.Errors, statusError{At: now, Error: l})
	}
}

// clearError forgets the error, if any, and returns what it was.
func (st *FileStatus) clearError() string {
	was := st.LastError
	st.LastError, st.ErrorAt, st.Errors = "", nil, nil
	return was
}

// Reloader keeps a Proxy's config and blocklist current: it reloads when
// the watched files change, on Reload (SIGHUP), and when a rule expires. A
// file that fails to load never replaces the last good one.
type Reloader struct {
	p       Edge
	log     *slog.Logger
	metrics *metrics.Metrics
	path    string

	// OnApply, if set, is called after each applied change with the new
	// bundle (the TLS manager uses it to manage names ahead).
	OnApply func(*Bundle)

	mu       sync.Mutex
	cur      *Bundle
	stateDir string
	running  map[string]string // the restart-only settings as started
	listSt   FileStatus
	cfgSt    FileStatus
	watcher  *blocklist.Watcher
	expiry   *time.Timer
	checked  time.Time // expiries up to here have been logged
	closed   bool
	// fleet follows the fleet's Redis with blocklist.source fleet; nil
	// in file mode. The mode is fixed at Start (a change needs a restart).
	fleet *fleetFollow
	// mem returns the free heap to the OS after a large list is applied
	// (memory.go).
	mem releaser
}

// Edge is what a Reloader changes: the request path, which takes a new
// config, list and renderer whole (Apply; on an error the old ones stay),
// and the geo database, read again when its file changes.
// *proxy.Proxy implements it.
type Edge interface {
	Apply(cfg *config.Config, list *blocklist.List, renderer *pages.Renderer) error
	RefreshGeo(cfg *config.Config, trigger string)
}

// NewReloader returns a Reloader for the config at path, applying to p.
// It does nothing until Start.
func NewReloader(p Edge, log *slog.Logger, m *metrics.Metrics, path string) *Reloader {
	return &Reloader{p: p, log: log, metrics: m, path: path, mem: releaser{log: log}}
}

// Start applies b (loaded by LoadBundle) and starts watching its files.
func (r *Reloader) Start(b *Bundle) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.running = b.Config.RestartFields()
	r.checked = now
	r.stateDir = b.StateDir
	var meta []any
	if v := b.Fleet; v != nil {
		meta = []any{"version", v.Number, "actor", v.Actor, "comment", v.Comment, "published_at", v.Time.UTC()}
	}
	raw := b.raw
	b.raw = nil
	// A part taken from the snapshot counts as a failed read of its
	// file, shown in GET /blocklist until the file is good.
	if err := r.commit(b, commitInfo{trigger: "start", now: now, config: true, list: true, meta: meta, raw: raw,
		cfgErr:  errors.Join(b.partErrs[PartConfig], b.partErrs[PartTemplate]),
		listErr: b.partErrs[PartBlocklist]}); err != nil {
		return err
	}
	var fleetContent []byte
	if raw != nil {
		fleetContent = raw.list
	}
	if *b.Config.Blocklist.Watch {
		w, err := blocklist.NewWatcher(r.watchPaths(), blocklist.WatcherOptions{
			Debounce: b.Config.Blocklist.Debounce,
			OnChange: func() { r.Reload("watch") },
			OnError:  func(err error) { r.log.Warn("watcher error", "event", "watch_error", "error", err.Error()) },
		})
		if err != nil {
			return fmt.Errorf("watching %v: %w", r.watchPaths(), err)
		}
		r.watcher = w
	}
	if b.Config.FromFleet() {
		if err := r.startFleetLocked(b, fleetContent); err != nil {
			if r.watcher != nil {
				r.watcher.Close()
			}
			return err
		}
	}
	if poll := b.Config.Blocklist.PollInterval; poll > 0 {
		go r.poll(poll)
	}
	if r.OnApply != nil {
		go r.OnApply(b) // once the whole start has succeeded (commit leaves it)
	}
	return nil
}

// commitInfo is what changed in a commit and why.
type commitInfo struct {
	trigger string // start, watch, poll, sighup, admin_api, fleet, ...
	now     time.Time
	// config and list say which parts are new: their file status and
	// reload metrics are updated, and a new list is audited.
	config, list bool
	// cfgErr and listErr (start only) are why a part came from the
	// snapshot: its file status keeps the error, counted as a failure.
	cfgErr, listErr error
	// meta goes on the audit line (a fleet version's number, actor...).
	meta []any
	// raw is the content of the parts in effect for the snapshot (nil
	// for a part the snapshot already holds); nil: no snapshot is
	// written (a start from the snapshot itself).
	raw *rawFiles
}

// commit is the one path by which a new state takes effect: at start, on
// a reload of the files and for a fleet version. It applies next to the
// proxy and makes it the bundle in effect, then does what follows every
// change: the file status and reload metrics of the parts that changed,
// edgeblock_running_from_snapshot, the audit line of a new list, the
// expiry timer, the snapshot and OnApply (which Start calls itself, last).
// When the proxy refuses next, nothing has changed and the error is
// returned for the caller to report. r.mu is held.
func (r *Reloader) commit(next *Bundle, c commitInfo) error {
	if err := r.p.Apply(next.Config, next.List, next.Renderer); err != nil {
		return err
	}
	prev := r.cur
	r.cur = next
	record := func(st *FileStatus, m metrics.FileMetrics, err error) {
		if err != nil {
			st.FromSnapshot = true
			st.setError(c.now, err)
			m.Record("failure", c.now)
			return
		}
		m.Record("success", c.now)
	}
	if c.config {
		r.cfgSt.File, r.cfgSt.SHA256, r.cfgSt.LoadedAt = next.Config.Path, next.Config.SHA256, c.now
		record(&r.cfgSt, r.metrics.Config, c.cfgErr)
	}
	if c.list {
		r.listSt = FileStatus{File: next.List.File(), SHA256: next.List.SHA256(), LoadedAt: c.now}
		record(&r.listSt, r.metrics.Blocklist, c.listErr)
		var was *blocklist.List
		if prev != nil {
			was = prev.List
		}
		r.audit(next.List, was, c.trigger, c.meta...)
		if next.List.Size() >= releaseMin {
			r.mem.applied(time.Now())
		}
	}
	fromSnapshot := 0.0
	if r.cfgSt.FromSnapshot || r.listSt.FromSnapshot {
		fromSnapshot = 1
	}
	r.metrics.RunningFromSnapshot.Set(fromSnapshot)
	r.scheduleExpiryLocked()
	if c.raw != nil {
		r.snapshot(c.now, c.raw.config, c.raw.template, c.raw.list)
	}
	if r.OnApply != nil && c.trigger != "start" {
		go r.OnApply(next)
	}
	return nil
}

func (r *Reloader) watchPaths() []string {
	paths := []string{r.path, r.cur.Config.Pages.Template, r.cur.Config.Geo.Database}
	if r.fleet == nil {
		// In fleet mode the list comes from Redis; blocklist.file is only pull's.
		paths = append(paths, r.cur.Config.Blocklist.File)
	}
	return append(paths, r.templatePaths()...)
}

// templatePaths returns the files of pages.templates and the pattern of
// the translation files in pages.languages_dir.
func (r *Reloader) templatePaths() []string {
	var paths []string
	for _, k := range slices.Sorted(maps.Keys(r.cur.Config.Pages.Templates)) {
		paths = append(paths, r.cur.Config.Pages.Templates[k])
	}
	if dir := r.cur.Config.Pages.LanguagesDir; dir != "" {
		paths = append(paths, filepath.Join(dir, "*.json"))
	}
	return paths
}

func (r *Reloader) poll(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		r.mu.Lock()
		closed, w, paths := r.closed, r.watcher, r.watchPaths()
		r.mu.Unlock()
		if closed {
			return
		}
		if w != nil {
			// Re-add watches lost with a deleted directory.
			w.SetPaths(paths)
		}
		r.Reload("poll")
	}
}

// Close stops watching.
func (r *Reloader) Close() {
	r.mu.Lock()
	r.closed = true
	w, f := r.watcher, r.fleet
	if r.expiry != nil {
		r.expiry.Stop()
	}
	r.mu.Unlock()
	r.mem.stop()
	if w != nil {
		w.Close()
	}
	if f != nil {
		f.stop()
	}
}

// Reload reads the config, the page template and the blocklist again and
// applies whatever changed. trigger ("watch", "sighup", "poll", ...) is
// logged. Problems are logged and counted; the last good state stays.
func (r *Reloader) Reload(trigger string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.cur == nil {
		return
	}
	now := time.Now()
	next := *r.cur
	next.raw, next.FromSnapshot, next.Problems, next.Snapshot = nil, nil, nil, nil
	cfgChanged, tmplChanged, listChanged := false, false, false
	cfgFailed := false
	cfgFailure := func(err error) {
		cfgFailed = true
		r.cfgFailure(now, trigger, err)
	}

	// The config file.
	cfgData, err := os.ReadFile(r.path)
	switch {
	case err != nil:
		cfgFailure(err)
		cfgData = nil
	case HashOf(cfgData) == r.cur.Config.SHA256:
		r.metrics.Config.Record("unchanged", now)
	default:
		cfg, err := config.ParseConfig(r.path, cfgData)
		if err != nil {
			cfgFailure(err)
			cfgData = nil
			break
		}
		restart := 0.0
		for k, v := range cfg.RestartFields() {
			if old := r.running[k]; old != v {
				restart = 1
				r.log.Warn("config change needs a restart; ignored until then", "event", "config_restart_needed",
					"field", k, "running", old, "file", v)
			}
		}
		r.metrics.RestartNeeded.Set(restart)
		next.Config = cfg
		cfgChanged = true
	}

	// The page template, which the config names.
	tmplSum := ""
	var tmplData []byte
	if t := next.Config.Pages.Template; t != "" {
		if tmplData, err = os.ReadFile(t); err == nil {
			tmplSum = HashOf(tmplData)
		} else {
			tmplSum = "unreadable"
		}
	}
	pagesSum := pageFilesSum(next.Config)
	if cfgChanged || tmplSum != r.cur.TemplateSHA256 || pagesSum != r.cur.pagesSum {
		rd, sum, data, err := LoadRenderer(next.Config)
		if err != nil {
			cfgFailure(err)
			if cfgChanged {
				r.log.Warn("config not applied because its page template failed", "event", "config_reload", "result", "failure")
			}
			next.Config, cfgChanged, cfgData = r.cur.Config, false, nil
		} else {
			next.Renderer, next.TemplateSHA256, tmplData = rd, sum, data
			tmplChanged = sum != r.cur.TemplateSHA256 || pagesSum != r.cur.pagesSum || cfgChanged
			next.pagesSum = pagesSum
		}
	}
	if !cfgFailed {
		r.cfgSt.FromSnapshot = false
		if was := r.cfgSt.clearError(); was != "" {
			r.log.Info("config error cleared: the config and template on disk are in effect", "event", "config_reload",
				"result", "recovered", "trigger", trigger, "file", r.path, "previous_error", was)
		}
	}

	// The blocklist: in fleet mode it comes from the Follower
	// (applyVersion); a poll confirms that the newest version is in
	// effect.
	file := next.Config.Blocklist.File
	var listData []byte
	listOK, same := false, false
	if r.fleet != nil {
		err = nil
		file = r.cur.List.File()
		if trigger == "poll" && r.fleetCurrent() {
			r.metrics.Blocklist.Record("unchanged", now)
		}
	} else if same, err = r.cur.List.SameFile(file); !same {
		// (A watcher's event after a change already applied, as every
		// edit's rename is, is the same content: compared as it is
		// read, without a copy of the list.)
		listData, err = os.ReadFile(file)
	}
	switch {
	case r.fleet != nil:
	case err != nil:
		r.listFailure(now, trigger, listError(next.Config, err))
	case same || r.cur.List.Is(file, listData):
		r.metrics.Blocklist.Record("unchanged", now)
		listOK = true
	default:
		// Against the list in effect: a file changed in a few lines
		// costs those lines, not a parse of the whole list.
		l, err := blocklist.Reparse(r.cur.List, file, listData)
		if err != nil {
			r.listFailure(now, trigger, err)
			break
		}
		if err := blocklist.CheckDrop(l, r.cur.List, next.Config.Blocklist.MaxDrop, now); err != nil {
			r.listRefused(now, trigger, l, err.(*blocklist.DropError))
			break
		}
		next.List = l
		listChanged, listOK = true, true
	}
	if listOK {
		r.listSt.FromSnapshot = false
		if was := r.listSt.clearError(); was != "" {
			r.log.Info("blocklist error cleared: the file on disk is in effect", "event", "blocklist_reload",
				"result", "recovered", "trigger", trigger, "file", file, "sha256", next.List.SHA256(), "previous_error", was)
		}
	}
	if !r.cfgSt.FromSnapshot && !r.listSt.FromSnapshot {
		r.metrics.RunningFromSnapshot.Set(0)
	}

	if !cfgChanged && !tmplChanged && !listChanged {
		r.p.RefreshGeo(next.Config, trigger) // else Apply does
		return
	}
	// Pass each content only where it is what is in effect.
	if !listOK {
		listData = nil
	}
	if tmplSum != next.TemplateSHA256 {
		tmplData = nil
	}
	if err := r.commit(&next, commitInfo{trigger: trigger, now: now, config: cfgChanged || tmplChanged, list: listChanged,
		raw: &rawFiles{config: cfgData, template: tmplData, list: listData}}); err != nil {
		r.cfgFailure(now, trigger, err)
		return
	}
	if cfgChanged || tmplChanged {
		r.log.Info("config applied", "event", "config_reload", "result", "success", "trigger", trigger,
			"file", r.path, "sha256", next.Config.SHA256, "routes", len(next.Config.Routes))
	}
	if cfgChanged && r.watcher != nil {
		if err := r.watcher.SetPaths(r.watchPaths()); err != nil {
			r.log.Warn("watcher error", "event", "watch_error", "error", err.Error())
		}
	}
	if listChanged && next.List.NeedsCompaction() {
		go r.compactList(next.List)
	}
}

// snapshot writes the state in effect to the state directory, if any.
// Each content given must be that of the part in effect; for a part given
// as nil, the snapshot's existing copy is named. A failure is logged: the
// state stays applied.
func (r *Reloader) snapshot(now time.Time, cfgData, tmplData, listData []byte) {
	if r.stateDir == "" {
		return
	}
	b := r.cur
	part := func(path, sum string, data []byte) snapshotPart {
		if _, ok := fleet.VersionOfListName(path); ok {
			return snapshotPart{path: path, sha256: sum, data: data}
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		return snapshotPart{path: path, sha256: sum, data: data}
	}
	var tmpl *snapshotPart
	if b.Config.Pages.Template != "" && b.TemplateSHA256 != "" {
		t := part(b.Config.Pages.Template, b.TemplateSHA256, tmplData)
		tmpl = &t
	}
	start := time.Now()
	wrote, err := writeSnapshot(r.stateDir, part(b.Config.Path, b.Config.SHA256, cfgData),
		part(b.List.File(), b.List.SHA256(), listData), tmpl, b.List.Len(), now)
	if err != nil {
		r.metrics.SnapshotWriteFailures.Inc()
		r.metrics.SnapshotStale.Set(1)
		// The snapshot on disk is now older than the state in effect:
		// mark it so that a start does not roll back to it.
		merr := markSnapshotStale(r.stateDir)
		marked := "the older snapshot is marked stale, and a start with bad files is refused rather than roll back to it"
		if merr != nil {
			marked = "marking the older snapshot stale failed too: " + merr.Error()
		}
		r.log.Error("snapshot not written; the state is applied, but "+marked,
			"event", "snapshot", "result", "failure", "state_dir", r.stateDir, "error", err.Error())
		return
	}
	r.metrics.SnapshotStale.Set(0)
	if wrote {
		r.log.Debug("snapshot written", "event", "snapshot", "result", "success", "state_dir", r.stateDir,
			"blocklist_sha256", b.List.SHA256(), "config_sha256", b.Config.SHA256, "seconds", time.Since(start).Seconds())
	}
}

// listRefused records a list that CheckDrop refused.
func (r *Reloader) listRefused(now time.Time, trigger string, l *blocklist.List, err *blocklist.DropError) {
	r.metrics.Blocklist.Record("refused", now)
	r.listSt.setError(now, err)
	r.log.Error("blocklist not applied: it would drop too many block rules; keeping the last good list", "event", "blocklist_reload",
		"result", "refused_drop", "trigger", trigger, "file", l.File(), "sha256", l.SHA256(), "rules", l.Len(),
		"dropped", err.Dropped, "block_rules", err.Total, "max_drop", err.MaxDrop, "marker", blocklist.AllowDropMarker,
		"serving_sha256", r.cur.List.SHA256(), "serving_rules", r.cur.List.Len())
}

func (r *Reloader) listFailure(now time.Time, trigger string, err error) {
	r.metrics.Blocklist.Record("failure", now)
	r.listSt.setError(now, err)
	r.log.Error("blocklist not applied; keeping the last good list", "event", "blocklist_reload", "result", "failure",
		"trigger", trigger, "file", r.cur.Config.Blocklist.File, "error", err.Error(),
		"serving_sha256", r.cur.List.SHA256(), "serving_rules", r.cur.List.Len())
}

func (r *Reloader) cfgFailure(now time.Time, trigger string, err error) {
	r.metrics.Config.Record("failure", now)
	r.cfgSt.setError(now, err)
	r.log.Error("config not applied; keeping the last good config", "event", "config_reload", "result", "failure",
		"trigger", trigger, "file", r.path, "error", err.Error())
}

// audit logs an applied list: hash, rule count, and the rules added,
// removed and changed since prev (attribute by attribute), each with who
// made the change and why when the file records it (see blocklist.Note).
// extra are more attributes (a fleet version's number, actor, comment).
func (r *Reloader) audit(l, prev *blocklist.List, trigger string, extra ...any) {
	c := newAuditChanges(l, prev)
	r.log.Info("blocklist applied", append([]any{"event", "blocklist_reload", "result", "success", "trigger", trigger,
		"file", l.File(), "sha256", l.SHA256(), "rules", l.Len(),
		"added_total", c.totals[blocklist.Added], "removed_total", c.totals[blocklist.Removed],
		"changed_total", c.totals[blocklist.Changed],
		"added", c.added, "removed", c.removed, "changed", c.changed}, extra...)...)
}

// scheduleExpiryLocked arms a timer for the next rule expiry, which logs
// the rules that expired. Matching checks expiry itself, so the timer only
// writes the audit trail.
func (r *Reloader) scheduleExpiryLocked() {
	if r.expiry != nil {
		r.expiry.Stop()
	}
	next, ok := r.cur.List.NextExpiry(r.checked)
	if !ok {
		return
	}
	// Wake at least daily: time.Until saturates for far expiries (year
	// 9999), and the saturated value plus a millisecond would wrap around
	// to a negative delay, firing at once and for ever.
	r.expiry = time.AfterFunc(min(time.Until(next), maxExpiryWait)+time.Millisecond, r.logExpired)
}

// maxExpiryWait bounds the expiry timer; logExpired re-arms it.
const maxExpiryWait = 24 * time.Hour

func (r *Reloader) logExpired() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	now := time.Now()
	for _, rule := range r.cur.List.ExpiredBetween(r.checked, now) {
		r.log.Info("blocklist rule expired", "event", "rule_expired", "rule", rule.Pattern(), "line", rule.Line,
			"expires", rule.Expires.UTC().Format(time.RFC3339), "file", r.cur.List.File())
	}
	r.checked = now
	r.scheduleExpiryLocked()
}

// Status is the state of the loaded files, served as JSON on GET
// /blocklist: the blocklist's fields at the top level, the config's under
// "config".
type Status struct {
	Blocklist FileStatus `json:"-"`
	Config    FileStatus `json:"config"`
}

// MarshalJSON puts the blocklist's fields at the top level.
func (s Status) MarshalJSON() ([]byte, error) {
	type flat struct {
		FileStatus
		Config FileStatus `json:"config"`
	}
	return json.Marshal(flat{FileStatus: s.Blocklist, Config: s.Config})
}

// Status returns the state of the loaded files.
func (r *Reloader) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{Blocklist: r.listSt, Config: r.cfgSt}
	s.Blocklist.Errors = append([]statusError{}, s.Blocklist.Errors...)
	s.Config.Errors = append([]statusError{}, s.Config.Errors...)
	if r.cur != nil {
		n, routes := r.cur.List.Len(), len(r.cur.Config.Routes)
		s.Blocklist.Rules, s.Config.Routes = &n, &routes
	}
	return s
}

// Current returns the bundle in effect.
func (r *Reloader) Current() *Bundle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// ListState returns the list in use and its reload state, for the admin
// listener's edits.
func (r *Reloader) ListState() admin.ListState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return admin.ListState{List: r.cur.List, File: r.cur.Config.Blocklist.File, MaxDrop: r.cur.Config.Blocklist.MaxDrop,
		LoadedAt: r.listSt.LoadedAt, ErrorAt: r.listSt.ErrorAt, LastError: r.listSt.LastError}
}

// FleetStore returns the fleet's version store when the blocklist follows
// the fleet, else nil.
func (r *Reloader) FleetStore() *fleet.Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fleet == nil {
		return nil
	}
	return r.fleet.store
}
