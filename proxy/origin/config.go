package origin

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/proxy/problem"
	"golang.org/x/net/http/httpguts"
)

// The defaults of Config, Passive, Health and Retry: what a zero field
// means.
const (
	DefaultCookie = "edgeblock_origin"

	DefaultMaxFails    = 1
	DefaultWindow      = 10 * time.Second
	DefaultFailTimeout = 10 * time.Second

	DefaultHealthPath = "/"
	// DefaultHealthTimeout bounds a probe when Health.Timeout is 0 (and
	// Interval is longer).
	DefaultHealthTimeout = 5 * time.Second
	DefaultHealthFails   = 3
	DefaultHealthPasses  = 2

	DefaultMaxTries    = 3
	DefaultTryDuration = 10 * time.Second
	DefaultBodyLimit   = 64 << 10
)

// Passive configures taking an origin out after failed requests: the
// passive: block of the config (origins: and routes[]). The zero value
// is the defaults.
type Passive struct {
	// MaxFails is how many failures within Window take the origin out;
	// default 1. A negative value turns passive health off.
	MaxFails int `yaml:"max_fails"`
	// Window is how far back failures count; default 10s.
	Window time.Duration `yaml:"window"`
	// FailTimeout is how long an origin stays out before one trial
	// request decides whether it is back; default 10s (in the config,
	// origins.fail_timeout).
	FailTimeout time.Duration `yaml:"fail_timeout"`
	// UnhealthyStatuses are response statuses that count as failures
	// (say 502, 503, 504; the response still goes to the visitor);
	// default none.
	UnhealthyStatuses []int `yaml:"unhealthy_statuses"`
}

// Health configures the active check of every origin: the health: block
// of the config. The zero value (no Interval) turns the check off.
type Health struct {
	// Path is requested with GET on each origin, below its base path;
	// default "/".
	Path string `yaml:"path"`
	// Interval between probes; 0 turns the active check off.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one probe; default the smaller of Interval and 5s.
	Timeout time.Duration `yaml:"timeout"`
	// ExpectStatus is the status a healthy origin answers; 0 means any
	// 2xx or 3xx.
	ExpectStatus int `yaml:"expect_status"`
	// ExpectBody, when set, must occur in the first 64 KiB of the body.
	ExpectBody string `yaml:"expect_body"`
	// Headers are sent with every probe; a "Host" entry sets the Host.
	Headers map[string]string `yaml:"headers"`
	// Fails is how many failed probes in a row take an origin out;
	// default 3. Passes is how many good ones in a row bring it back;
	// default 2.
	Fails  int `yaml:"fails"`
	Passes int `yaml:"passes"`
}

// Retry bounds sending a request again to another origin: the retries:
// block of the config. The zero value is the defaults.
type Retry struct {
	// MaxTries is how many origins one request may be sent to, the
	// first included; default 3. 1 turns retries off.
	MaxTries int `yaml:"max_tries"`
	// TryDuration is how long after the first attempt a new one may
	// start; default 10s.
	TryDuration time.Duration `yaml:"try_duration"`
	// BodyLimit is the largest request body kept in memory so that it
	// can be sent again; default 64 KiB. A larger body is streamed and
	// its request is not retried once it reached an origin.
	BodyLimit int64 `yaml:"body_limit"`
}

// Validate returns the problems of h, with paths below the health block.
func (h *Health) Validate() problem.List {
	var l problem.List
	if h.Interval < 0 || h.Timeout < 0 {
		l.Addf(nil, "interval and timeout must not be negative")
	}
	if h.Fails < 0 || h.Passes < 0 {
		l.Addf(nil, "fails and passes must not be negative")
	}
	if h.ExpectStatus != 0 && (h.ExpectStatus < 100 || h.ExpectStatus > 599) {
		l.Addf(problem.Path{"expect_status"}, "%d is not an HTTP status", h.ExpectStatus)
	}
	if h.Path != "" {
		if u, err := url.Parse(h.Path); err != nil || !strings.HasPrefix(h.Path, "/") || u.Host != "" {
			l.Addf(problem.Path{"path"}, "%q: want a path such as /healthz", h.Path)
		}
	}
	for k := range h.Headers {
		if !httpguts.ValidHeaderFieldName(k) {
			l.Addf(problem.Path{"headers"}, "%q is not a header name", k)
		}
	}
	return l
}

// Validate returns the problems of p, with paths below the passive block.
func (p *Passive) Validate() problem.List {
	var l problem.List
	if p.Window < 0 || p.FailTimeout < 0 {
		l.Addf(nil, "window and fail_timeout must not be negative")
	}
	for i, s := range p.UnhealthyStatuses {
		if s < 100 || s > 599 {
			l.Addf(problem.Path{"unhealthy_statuses", i}, "%d is not an HTTP status", s)
		}
	}
	return l
}

// Validate returns the problems of r, with paths below the retries block.
func (r *Retry) Validate() problem.List {
	var l problem.List
	if r.MaxTries < 0 || r.TryDuration < 0 || r.BodyLimit < 0 {
		l.Addf(nil, "max_tries, try_duration and body_limit must not be negative")
	}
	return l
}

// withDefaults returns p with the zero fields set to their defaults.
func (p Passive) withDefaults() Passive {
	if p.MaxFails == 0 {
		p.MaxFails = DefaultMaxFails
	}
	if p.Window == 0 {
		p.Window = DefaultWindow
	}
	if p.FailTimeout == 0 {
		p.FailTimeout = DefaultFailTimeout
	}
	return p
}

// withDefaults returns h with the zero fields set to their defaults.
func (h Health) withDefaults() Health {
	if h.Path == "" {
		h.Path = DefaultHealthPath
	}
	if h.Timeout == 0 {
		h.Timeout = min(h.Interval, DefaultHealthTimeout)
	}
	if h.Fails == 0 {
		h.Fails = DefaultHealthFails
	}
	if h.Passes == 0 {
		h.Passes = DefaultHealthPasses
	}
	return h
}

// withDefaults returns r with the zero fields set to their defaults.
func (r Retry) withDefaults() Retry {
	if r.MaxTries == 0 {
		r.MaxTries = DefaultMaxTries
	}
	if r.TryDuration == 0 {
		r.TryDuration = DefaultTryDuration
	}
	if r.BodyLimit == 0 {
		r.BodyLimit = DefaultBodyLimit
	}
	return r
}

// withDefaults returns c with the documented defaults filled in.
func (c Config) withDefaults() Config {
	if c.Policy == "" {
		c.Policy = RoundRobin
	}
	if c.Cookie == "" {
		c.Cookie = DefaultCookie
	}
	if c.AllDown == "" {
		c.AllDown = AllDownLeastBad
	}
	c.Passive = c.Passive.withDefaults()
	c.Health = c.Health.withDefaults()
	c.Retry = c.Retry.withDefaults()
	return c
}

// probeHeader sets the headers of h on a probe request: a Host entry sets
// the request's Host.
func (h *Health) probeHeader(req *http.Request) {
	for k, v := range h.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
}
