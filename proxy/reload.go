package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
)

// auditLimit bounds how many added, removed and changed rules one audit
// line names, of each; the totals are always given.
const auditLimit = 50

// Bundle is a loaded config with its blocklist and page renderer.
type Bundle struct {
	Config   *Config
	List     *blocklist.List
	Renderer *pages.Renderer
	// TemplateSHA256 is the hash of the page template file, if any.
	TemplateSHA256 string
}

// LoadBundle loads the config at path, the blocklist and the page template
// it names, and checks them. The error lists every problem found, each with
// its file and line where known.
func LoadBundle(path string) (*Bundle, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Config: cfg}
	var errs []error
	if b.Renderer, b.TemplateSHA256, err = loadRenderer(cfg); err != nil {
		errs = append(errs, err)
	}
	if b.List, err = blocklist.Load(cfg.Blocklist.File); err != nil {
		errs = append(errs, listError(cfg, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b, nil
}

// listError names the config field and line for errors that are not
// already file:line problems (a missing or unreadable file).
func listError(cfg *Config, err error) error {
	var pe *blocklist.ParseError
	if errors.As(err, &pe) {
		return err
	}
	return cfg.fileError([]any{"blocklist", "file"}, err)
}

func loadRenderer(cfg *Config) (*pages.Renderer, string, error) {
	o := pages.Options{BlockedBy: cfg.Blocklist.BlockedBy}
	sum := ""
	if cfg.Pages.Template != "" {
		data, err := os.ReadFile(cfg.Pages.Template)
		if err != nil {
			return nil, "", cfg.fileError([]any{"pages", "template"}, err)
		}
		o.Template, o.TemplateFile = string(data), cfg.Pages.Template
		sum = hashOf(data)
	}
	r, err := pages.NewRenderer(o)
	return r, sum, err
}

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileStatus is the reload state of one file, for GET /blocklist.
type fileStatus struct {
	File      string     `json:"file"`
	SHA256    string     `json:"sha256"`
	Rules     *int       `json:"rules,omitempty"`
	Routes    *int       `json:"routes,omitempty"`
	LoadedAt  time.Time  `json:"loaded_at"`
	LastError string     `json:"last_error,omitempty"`
	ErrorAt   *time.Time `json:"last_error_at,omitempty"`
}

// Reloader keeps a Proxy's config and blocklist current: it reloads when
// the watched files change, on Reload (SIGHUP), and when a rule expires. A
// file that fails to load never replaces the last good one.
type Reloader struct {
	p       *Proxy
	log     *slog.Logger
	metrics *Metrics
	path    string

	// OnApply, if set, is called after each applied change with the new
	// bundle (the TLS manager uses it to manage names ahead).
	OnApply func(*Bundle)

	mu      sync.Mutex
	cur     *Bundle
	running map[string]string // the restart-only settings as started
	listSt  fileStatus
	cfgSt   fileStatus
	watcher *blocklist.Watcher
	expiry  *time.Timer
	checked time.Time // expiries up to here have been logged
	closed  bool
}

// NewReloader returns a Reloader for the config at path. It does nothing
// until Start.
func NewReloader(p *Proxy, log *slog.Logger, m *Metrics, path string) *Reloader {
	return &Reloader{p: p, log: log, metrics: m, path: path}
}

// Start applies b (loaded by LoadBundle) and starts watching its files.
func (r *Reloader) Start(b *Bundle) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.p.Apply(b.Config, b.List, b.Renderer); err != nil {
		return err
	}
	now := time.Now()
	r.cur = b
	r.running = b.Config.restartFields()
	r.checked = now
	r.listSt = fileStatus{File: b.List.File(), SHA256: b.List.SHA256(), LoadedAt: now}
	r.cfgSt = fileStatus{File: b.Config.Path, SHA256: b.Config.SHA256, LoadedAt: now}
	r.metrics.Blocklist.record("success", now)
	r.metrics.Config.record("success", now)
	r.audit(b.List, nil, "start")
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
	r.scheduleExpiryLocked()
	if poll := b.Config.Blocklist.PollInterval; poll > 0 {
		go r.poll(poll)
	}
	if r.OnApply != nil {
		go r.OnApply(b)
	}
	return nil
}

func (r *Reloader) watchPaths() []string {
	return []string{r.path, r.cur.Config.Blocklist.File, r.cur.Config.Pages.Template}
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
	w := r.watcher
	if r.expiry != nil {
		r.expiry.Stop()
	}
	r.mu.Unlock()
	if w != nil {
		w.Close()
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
	cfgChanged, tmplChanged, listChanged := false, false, false

	// The config file.
	data, err := os.ReadFile(r.path)
	switch {
	case err != nil:
		r.cfgFailure(now, trigger, err)
	case hashOf(data) == r.cur.Config.SHA256:
		r.metrics.Config.record("unchanged", now)
	default:
		cfg, err := ParseConfig(r.path, data)
		if err != nil {
			r.cfgFailure(now, trigger, err)
			break
		}
		restart := 0.0
		for k, v := range cfg.restartFields() {
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
	if t := next.Config.Pages.Template; t != "" {
		if data, err := os.ReadFile(t); err == nil {
			tmplSum = hashOf(data)
		} else {
			tmplSum = "unreadable"
		}
	}
	if cfgChanged || tmplSum != r.cur.TemplateSHA256 {
		rd, sum, err := loadRenderer(next.Config)
		if err != nil {
			r.cfgFailure(now, trigger, err)
			if cfgChanged {
				r.log.Warn("config not applied because its page template failed", "event", "config_reload", "result", "failure")
			}
			next.Config, cfgChanged = r.cur.Config, false
		} else {
			next.Renderer, next.TemplateSHA256 = rd, sum
			tmplChanged = sum != r.cur.TemplateSHA256 || cfgChanged
		}
	}

	// The blocklist.
	file := next.Config.Blocklist.File
	data, err = os.ReadFile(file)
	switch {
	case err != nil:
		r.listFailure(now, trigger, listError(next.Config, err))
	case file == r.cur.List.File() && hashOf(data) == r.cur.List.SHA256():
		r.metrics.Blocklist.record("unchanged", now)
	default:
		l, err := blocklist.Parse(file, data)
		if err != nil {
			r.listFailure(now, trigger, err)
			break
		}
		next.List = l
		listChanged = true
	}

	if !cfgChanged && !tmplChanged && !listChanged {
		return
	}
	if err := r.p.Apply(next.Config, next.List, next.Renderer); err != nil {
		r.cfgFailure(now, trigger, err)
		return
	}
	prev := r.cur
	r.cur = &next
	if cfgChanged || tmplChanged {
		r.cfgSt = fileStatus{File: r.path, SHA256: next.Config.SHA256, LoadedAt: now}
		r.metrics.Config.record("success", now)
		r.log.Info("config applied", "event", "config_reload", "result", "success", "trigger", trigger,
			"file", r.path, "sha256", next.Config.SHA256, "routes", len(next.Config.Routes))
	}
	if listChanged {
		r.listSt = fileStatus{File: file, SHA256: next.List.SHA256(), LoadedAt: now}
		r.metrics.Blocklist.record("success", now)
		r.audit(next.List, prev.List, trigger)
	}
	if cfgChanged && r.watcher != nil {
		if err := r.watcher.SetPaths(r.watchPaths()); err != nil {
			r.log.Warn("watcher error", "event", "watch_error", "error", err.Error())
		}
	}
	r.scheduleExpiryLocked()
	if r.OnApply != nil {
		go r.OnApply(&next)
	}
}

func (r *Reloader) listFailure(now time.Time, trigger string, err error) {
	r.metrics.Blocklist.record("failure", now)
	r.listSt.LastError, r.listSt.ErrorAt = err.Error(), &now
	r.log.Error("blocklist not applied; keeping the last good list", "event", "blocklist_reload", "result", "failure",
		"trigger", trigger, "file", r.cur.Config.Blocklist.File, "error", err.Error(),
		"serving_sha256", r.cur.List.SHA256(), "serving_rules", r.cur.List.Len())
}

func (r *Reloader) cfgFailure(now time.Time, trigger string, err error) {
	r.metrics.Config.record("failure", now)
	r.cfgSt.LastError, r.cfgSt.ErrorAt = err.Error(), &now
	r.log.Error("config not applied; keeping the last good config", "event", "config_reload", "result", "failure",
		"trigger", trigger, "file", r.path, "error", err.Error())
}

// audit logs an applied list: hash, rule count, and the rules added,
// removed and changed since prev (attribute by attribute), each with who
// made the change and why when the file records it (see blocklist.Note).
func (r *Reloader) audit(l, prev *blocklist.List, trigger string) {
	c := newAuditChanges(l, prev)
	r.log.Info("blocklist applied", "event", "blocklist_reload", "result", "success", "trigger", trigger,
		"file", l.File(), "sha256", l.SHA256(), "rules", l.Len(),
		"added_total", c.totals[blocklist.Added], "removed_total", c.totals[blocklist.Removed],
		"changed_total", c.totals[blocklist.Changed],
		"added", c.added, "removed", c.removed, "changed", c.changed)
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
	Blocklist fileStatus `json:"-"`
	Config    fileStatus `json:"config"`
}

// MarshalJSON puts the blocklist's fields at the top level.
func (s Status) MarshalJSON() ([]byte, error) {
	type flat struct {
		fileStatus
		Config fileStatus `json:"config"`
	}
	return json.Marshal(flat{fileStatus: s.Blocklist, Config: s.Config})
}

// Status returns the state of the loaded files.
func (r *Reloader) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{Blocklist: r.listSt, Config: r.cfgSt}
	if r.cur != nil {
		n, routes := r.cur.List.Len(), len(r.cur.Config.Routes)
		s.Blocklist.Rules, s.Config.Routes = &n, &routes
	}
	return s
}
