package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/admin"
	"github.com/edgeblock/edgeblock/proxy/certmgr"
	"github.com/edgeblock/edgeblock/proxy/certs"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/origin"
	"github.com/edgeblock/edgeblock/proxy/problem"
	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
)

// Config is the configuration file, as documented in cmd/edgeblock/help/config.md. Every
// field's zero value means the documented default; LoadConfig fills the
// defaults in and resolves relative paths against the config file's
// directory.
type Config struct {
	Listen         ListenConfig    `yaml:"listen"`
	TLS            TLSConfig       `yaml:"tls"`
	Blocklist      BlocklistConfig `yaml:"blocklist"`
	Pages          PagesConfig     `yaml:"pages"`
	Routes         []RouteConfig   `yaml:"routes"`
	TrustedProxies []string        `yaml:"trusted_proxies"`
	Timeouts       TimeoutConfig   `yaml:"timeouts"`
	Limits         LimitsConfig    `yaml:"limits"`
	Origins        OriginConfig    `yaml:"origins"`
	Log            LogConfig       `yaml:"log"`
	Admin          admin.Config    `yaml:"admin"`
	GC             GCConfig        `yaml:"gc"`
	// Geo and Transparency: rules scoped to countries and the public
	// record of published rules (geoconfig.go).
	Geo          GeoConfig          `yaml:"geo"`
	Transparency TransparencyConfig `yaml:"transparency"`
	// Fleet connects the node to the fleet's Redis (see proxy/fleet). Nil
	// (no fleet: section) means no fleet: the blocklist is a file.
	Fleet *fleet.Config `yaml:"fleet"`

	// MaxHeaderBytes bounds request headers on the public listeners.
	// Default 64 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`

	// Warnings are problems that do not stop the config from loading,
	// each as "file:line: field: message".
	Warnings []string `yaml:"-"`

	// Path is the file the config was loaded from; SHA256 its content's hash.
	Path   string `yaml:"-"`
	SHA256 string `yaml:"-"`
	// src is the parsed document without the routes' entries (see
	// withoutRoutes), for the lines of problems found later.
	src *yaml.Node
	// fleetErr is the fleet section's defaults error, for validate.
	fleetErr error
}

// Blocklist sources, the values of blocklist.source.
const (
	SourceFile  = "file"
	SourceFleet = "fleet"
)

// FromFleet reports whether the blocklist comes from the fleet's Redis.
func (c *Config) FromFleet() bool { return c.Blocklist.Source == SourceFleet }

// ListenConfig holds the listener addresses. Changing them needs a restart.
type ListenConfig struct {
	// HTTP is the public plain-HTTP listener; empty means none.
	HTTP string `yaml:"http"`
	// HTTPS is the public TLS listener; empty means none.
	HTTPS string `yaml:"https"`
	// Admin serves /healthz, /readyz, /metrics and /blocklist. Default
	// 127.0.0.1:9090; "off" disables it.
	Admin string `yaml:"admin"`
	// QUIC is the public HTTP/3 listener, a UDP address, normally the
	// address of HTTPS; empty means none. It needs the HTTPS listener
	// (same certificates, same handler).
	QUIC string `yaml:"quic"`
	// QUICAdvertisePort is the port HTTPS responses name in
	// Alt-Svc: h3=":PORT" (a load balancer may map it). Zero: the port
	// of QUIC.
	QUICAdvertisePort int `yaml:"quic_advertise_port"`
}

// TLSConfig configures certificates. Changing it needs a restart.
type TLSConfig struct {
	// Mode is off (default), internal or acme.
	Mode string `yaml:"mode"`
	// CA is the ACME directory URL. Default Let's Encrypt production;
	// Staging switches the default to Let's Encrypt staging.
	CA      string `yaml:"ca"`
	Staging bool   `yaml:"staging"`
	// CARoot is a PEM file of roots to trust for the ACME server's own
	// HTTPS (a private ACME server).
	CARoot string `yaml:"ca_root"`
	Email  string `yaml:"email"`
	// Storage is the certificate directory. Default
	// $XDG_DATA_HOME/edgeblock, else $HOME/.local/share/edgeblock.
	Storage string `yaml:"storage"`
	// Challenges are the ACME challenge types offered: "http-01" (answered
	// on the HTTP listener) and "tls-alpn-01" (on the HTTPS listener).
	// Default both.
	Challenges []string `yaml:"challenges"`
	// RedirectHTTP sends plain-HTTP requests to https with a 308. Default
	// true whenever Mode is not off and an HTTPS listener is configured.
	RedirectHTTP *bool `yaml:"redirect_http"`
	// RedirectPort is the https port named in redirects, for when the
	// public port differs from listen.https (a Kubernetes Service mapping
	// 443 to 8443). Default: the port of listen.https; 443 is left out.
	RedirectPort int `yaml:"redirect_port"`
	// ManageAheadLimit caps how many exact names from routes and block
	// rules get certificates at start and reload; names beyond it (and
	// names under wildcards) are obtained on first use. Default 1000.
	ManageAheadLimit int `yaml:"manage_ahead_limit"`
	// OnDemand bounds the certificates obtained on first use.
	OnDemand OnDemandConfig `yaml:"on_demand"`
	// CacheCapacity is how many certificates are kept in memory; beyond
	// it certmagic evicts one at random, which is loaded again from
	// storage at its next handshake. Default 10000.
	CacheCapacity int `yaml:"cache_capacity"`
	// KeyType is the key type of new certificates: p256 (default), p384,
	// rsa2048 or rsa4096.
	KeyType string `yaml:"key_type"`
	// InternalLifetime is how long the internal CA's leaf certificates
	// are valid; they are renewed with a third of it left. Default 168h
	// (7 days); at least 10s.
	InternalLifetime time.Duration `yaml:"internal_lifetime"`
	// DNS, if set, solves DNS-01 challenges for the wildcard
	// certificates of routes with tls.wildcard (tls.mode acme). Default
	// none.
	DNS *DNSConfig `yaml:"dns"`
}

// DNSConfig configures DNS-01 challenges through a DNS provider (see
// certs.DNS).
type DNSConfig struct {
	// Provider is rfc2136 (dynamic updates signed with TSIG). Required.
	Provider string `yaml:"provider"`
	// Server is the host:port of the primary server taking updates.
	// Required.
	Server string `yaml:"server"`
	// KeyName is the TSIG key's name. Required.
	KeyName string `yaml:"key_name"`
	// KeyAlg is the TSIG algorithm. Default hmac-sha256.
	KeyAlg string `yaml:"key_alg"`
	// KeySecretFile holds the key's base64 secret. Required.
	KeySecretFile string `yaml:"key_secret_file"`
	// Resolvers (host:port) find the zone and check propagation.
	// Default the system's resolvers.
	Resolvers []string `yaml:"resolvers"`
	// PropagationTimeout bounds the wait for the record to show on the
	// zone's authoritative servers; negative skips the check. Default
	// 2m.
	PropagationTimeout time.Duration `yaml:"propagation_timeout"`
}

// certsDNS returns d for the certs package.
func (d *DNSConfig) CertsDNS() certs.DNS {
	return certs.DNS{Provider: d.Provider, Server: d.Server, KeyName: d.KeyName, KeyAlg: d.KeyAlg,
		KeySecretFile: d.KeySecretFile, Resolvers: d.Resolvers, PropagationTimeout: d.PropagationTimeout}
}

// dnsString returns d's settings as one string, for restartFields.
func DNSString(d *DNSConfig) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf("%+v", *d)
}

// RouteTLSConfig is a route's certificate settings.
type RouteTLSConfig struct {
	// Wildcard serves the names under a "*.name" route with one
	// wildcard certificate for *.name, obtained ahead through DNS-01
	// (tls.mode acme, with DNS or tls.dns) or signed by the internal
	// CA. Default false: one certificate per name, on demand.
	Wildcard bool `yaml:"wildcard"`
	// DNS is this route's DNS-01 setup, instead of tls.dns; it implies
	// Wildcard.
	DNS *DNSConfig `yaml:"dns"`
}

// OnDemandConfig bounds on-demand issuance, per covering pattern (a
// route's host or a block rule's pattern). A name that already holds a
// certificate is not new.
type OnDemandConfig struct {
	// MaxNewPerHour is how many new names one pattern may get
	// certificates for in any 60 minutes. Default 10.
	MaxNewPerHour int `yaml:"max_new_per_hour"`
	// MaxNames is how many names one pattern may hold certificates for
	// in total. Default 1000.
	MaxNames int `yaml:"max_names"`
	// Ask is an http(s) URL asked with GET ?domain=NAME after our own
	// decision allowed a name, as Caddy's on-demand ask: 200 allows,
	// anything else or no answer within AskTimeout refuses. Default none.
	Ask string `yaml:"ask"`
	// AskTimeout bounds one ask. Default 5s.
	AskTimeout time.Duration `yaml:"ask_timeout"`
}

// BlocklistConfig locates the blocklist and the defaults of its rules.
type BlocklistConfig struct {
	// Source is where the blocklist comes from: "file" (default), the
	// file named by File, or "fleet", the version published in the
	// fleet's Redis (needs the fleet section). Needs a restart.
	Source string `yaml:"source"`
	// File is the blocklist path. Required with source file; with source
	// fleet it is optional and only where `edgeblock pull` writes by
	// default.
	File string `yaml:"file"`
	// Policy is the policy link of rules that name none.
	Policy string `yaml:"policy"`
	// BlockedBy is the blocking party's URL for the RFC 7725 Link header.
	BlockedBy string `yaml:"blocked_by"`
	// Debounce is how long the watcher waits for writes to settle.
	// Default 100ms.
	Debounce time.Duration `yaml:"debounce"`
	// Watch reloads on file system events (default true); false reloads
	// only on SIGHUP and the poll interval.
	Watch *bool `yaml:"watch"`
	// PollInterval re-reads watched files this often in case a change
	// event was lost (network file systems, exhausted inotify watches).
	// Default 30s; a negative value disables polling.
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxDrop is the largest share of the block-mode rules in effect that
	// a new list may drop, 0 < x <= 1; a list that drops more, or all of
	// them, is refused unless it has the blocklist.AllowDropMarker line.
	// Default 0.5.
	MaxDrop float64 `yaml:"max_drop"`
}

// PagesConfig configures the pages edgeblock serves itself: the block
// page and the error pages (cmd/edgeblock/help/pages.md).
type PagesConfig struct {
	// Template is an html/template file replacing the built-in block
	// page; the same as templates.block, which it may not be given with.
	Template string `yaml:"template"`
	// Templates are html/template files replacing built-in pages, by
	// page: block, error (every error page without a file of its own),
	// or the status of an error page (400, 404, 405, 502, 503, 504, 508).
	// Empty means the built-in pages.
	Templates map[string]string `yaml:"templates"`
	// Operator is the name of the network's operator, shown on every
	// page as who blocked the site. Empty means the pages say "the
	// operator of this network" and name no one.
	Operator string `yaml:"operator"`
	// Contact is where visitors reach the operator: an absolute http(s)
	// URL or mailto:address. A rule's contact= overrides it. Empty: none.
	Contact string `yaml:"contact"`
	// Appeal is the absolute http(s) URL where visitors appeal a block.
	// A rule's appeal= overrides it. Empty: none.
	Appeal string `yaml:"appeal"`
	// DefaultLanguage is the language (a tag such as en or de) of the
	// pages for visitors whose Accept-Language names none of the pages'
	// languages, and the language of rules' plain reason=. Default en.
	DefaultLanguage string `yaml:"default_language"`
	// LanguagesDir holds the operator's translation files, TAG.json, each
	// adding a language or overriding built-in messages. Empty: none.
	LanguagesDir string `yaml:"languages_dir"`
	// RetryAfter is sent as Retry-After with the 502, 503 and 504 pages,
	// and the 503 page while starting. Default 30s; 0s sends none.
	RetryAfter *time.Duration `yaml:"retry_after"`
}

// RouteConfig sends the requests for a host to its origins.
type RouteConfig struct {
	// Host is an exact name or "*.name" for the names under name.
	Host string `yaml:"host"`
	// Origins are http:// or https:// base URLs, each written as a
	// string or as {url, weight}.
	Origins []OriginSpec `yaml:"origins"`
	// TLS is the route's certificate settings.
	TLS RouteTLSConfig `yaml:"tls"`
	// Balancing, health and retries of this route; a setting left out
	// is taken from the origins: section.
	Balance BalanceConfig `yaml:",inline"`
}

// decodePlain decodes n if it is a mapping of no more than host, a
// string, and origins, a list of strings, and reports whether it did.
func (r *RouteConfig) decodePlain(n *yaml.Node) bool {
	if n.Kind != yaml.MappingNode {
		return false
	}
	var host, origins *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			return false
		}
		switch {
		case k.Value == "host" && host == nil && v.Kind == yaml.ScalarNode && v.Tag == "!!str":
			host = v
		case k.Value == "origins" && origins == nil && v.Kind == yaml.SequenceNode:
			origins = v
		default:
			return false
		}
	}
	var specs []OriginSpec
	if origins != nil {
		specs = make([]OriginSpec, len(origins.Content))
		for i, o := range origins.Content {
			if o.Kind != yaml.ScalarNode || o.Tag != "!!str" {
				return false
			}
			specs[i].URL = o.Value
		}
	}
	*r = RouteConfig{Origins: specs}
	if host != nil {
		r.Host = host.Value
	}
	return true
}

// OriginSpec is one origin of a route: "http://10.0.0.1:8080", or
// {url: http://10.0.0.1:8080, weight: 3}.
type OriginSpec struct {
	// URL is the origin's http:// or https:// base URL.
	URL string `yaml:"url"`
	// Weight is the origin's share of the route's requests relative to
	// the others'. Default 1.
	Weight int `yaml:"weight"`
}

// UnmarshalYAML accepts a plain URL string as well as a mapping.
func (o *OriginSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		o.URL = n.Value
		return nil
	}
	type plain OriginSpec
	return n.Decode((*plain)(o))
}

// BalanceConfig is how a route's origins are balanced, checked and
// retried. In origins: it holds the defaults of every route; in a route,
// each block given (lb, health, passive, retries, all_down, cookie)
// replaces the default whole.
type BalanceConfig struct {
	// LB is the balancing policy: round_robin (default), least_conn,
	// random_two, first, ip_hash or cookie.
	LB string `yaml:"lb"`
	// Cookie names the sticky cookie of lb: cookie. Default
	// "edgeblock_origin".
	Cookie string `yaml:"cookie"`
	// Health is the active health check; off unless interval is set.
	Health *origin.Health `yaml:"health"`
	// Passive takes an origin out after failed requests.
	Passive *origin.Passive `yaml:"passive"`
	// Retries bounds sending a failed request to another origin.
	Retries *origin.Retry `yaml:"retries"`
	// OriginTLS configures HTTPS to the origins (routes[].tls is the
	// route's own certificate).
	OriginTLS *OriginTLSConfig `yaml:"origin_tls"`
	// HTTP2 lets HTTPS origins that offer HTTP/2 (ALPN) be spoken to
	// with it. Default true.
	HTTP2 *bool `yaml:"http2"`
	// MaxIdleConns bounds the idle connections kept per origin address.
	// Default 100.
	MaxIdleConns int `yaml:"max_idle_conns"`
	// Timeouts override timeouts.dial and timeouts.response_header.
	Timeouts *OriginTimeouts `yaml:"timeouts"`
	// Headers are rules for request and response headers.
	Headers *HeaderRules `yaml:"headers"`
	// AllDown is what a request gets when every origin is out: least_bad
	// (default: the origin that is least out is tried anyway) or 503 (a
	// 503 page with Retry-After).
	AllDown string `yaml:"all_down"`
}

// OriginTLSConfig is how the edge speaks TLS to https:// origins.
type OriginTLSConfig struct {
	// CAFile is a PEM file of the roots that origin certificates must
	// chain to, instead of the system roots.
	CAFile string `yaml:"ca_file"`
	// ClientCert and ClientKey are PEM files of the certificate the edge
	// presents to origins that ask for one.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// ServerName is the name sent (SNI) and verified; default the
	// origin URL's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any origin certificate. Warned about.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// OriginTimeouts override the global origin timeouts for a route.
type OriginTimeouts struct {
	// Dial bounds connecting (and the TLS handshake); default timeouts.dial.
	Dial time.Duration `yaml:"dial"`
	// ResponseHeader bounds waiting for the response headers; default
	// timeouts.response_header.
	ResponseHeader time.Duration `yaml:"response_header"`
}

// wildcardCert reports whether the route is served by one wildcard
// certificate.
func (r *RouteConfig) WildcardCert() bool { return r.TLS.Wildcard || r.TLS.DNS != nil }

// dnsFor returns the DNS-01 setup of route r: its own, else the global one.
func (c *Config) DNSFor(r *RouteConfig) *DNSConfig {
	if r.TLS.DNS != nil {
		return r.TLS.DNS
	}
	return c.TLS.DNS
}

// TimeoutConfig bounds the public servers and the origin connections.
type TimeoutConfig struct {
	// ReadHeader bounds reading request headers. Default 10s.
	ReadHeader time.Duration `yaml:"read_header"`
	// Idle bounds keep-alive connections between requests. Default 120s.
	Idle time.Duration `yaml:"idle"`
	// Dial bounds connecting to an origin. Default 5s.
	Dial time.Duration `yaml:"dial"`
	// ResponseHeader bounds waiting for an origin's response headers;
	// past it the visitor gets a 504 page. Default 60s.
	ResponseHeader time.Duration `yaml:"response_header"`
	// Grace bounds how long in-flight requests may finish at shutdown,
	// after the drain. Default 30s.
	Grace time.Duration `yaml:"grace"`
	// Drain is how long the public listeners keep serving after SIGTERM
	// while /readyz answers 503, so that a load balancer sees the 503
	// before connections are refused; responses meanwhile carry
	// Connection: close (HTTP/2: GOAWAY). Default 5s; 0s skips the drain.
	Drain *time.Duration `yaml:"drain"`
	// WriteIdle bounds how long a response write may make no progress (a
	// client that does not read, an HTTP/2 stream with no window); past it
	// the HTTP/1.1 connection is closed or the HTTP/2 stream reset, and
	// the origin connection released. Default 30s.
	WriteIdle time.Duration `yaml:"write_idle"`
	// BodyRead bounds how long reading a request body may make no
	// progress; past it the request is cut off and the origin connection
	// released. Default 30s.
	BodyRead time.Duration `yaml:"body_read"`
}

// LimitsConfig caps what one client can hold on the public listeners. A
// client is an IPv4 address or an IPv6 /64; connections from
// trusted_proxies are not capped per client, and requests through them
// count against the client they forward for (X-Forwarded-For).
// Changing the limits needs a restart.
type LimitsConfig struct {
	// MaxStreamsPerConn caps concurrent HTTP/2 streams per connection
	// (SETTINGS_MAX_CONCURRENT_STREAMS). Default 100.
	MaxStreamsPerConn int `yaml:"max_streams_per_conn"`
	// MaxConnsPerClient caps open connections per client; further ones
	// are closed at accept and counted in
	// edgeblock_connections_refused_total. Default 256.
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
	// MaxRequestsPerClient caps requests in flight per client; further
	// ones get 429 with Retry-After. Default 128: below origins.max_conns,
	// so that one client cannot hold all of an origin's connections.
	MaxRequestsPerClient int `yaml:"max_requests_per_client"`
	// QUICPendingHandshakes caps the QUIC handshakes under way at once,
	// all clients together (each holds about 150 KiB of heap and
	// goroutine stacks until it completes or timeouts.read_header ends
	// it); beyond it a new connection
	// attempt is sent a Retry, and one that proved its address is
	// refused. Default 1000 (DefaultQUICPendingHandshakes).
	QUICPendingHandshakes int `yaml:"quic_pending_handshakes"`
}

// OriginConfig tunes origin health handling and bounds what an origin
// can cost the edge.
type OriginConfig struct {
	// FailTimeout is how long an origin that refused a connection is
	// skipped. Default 10s.
	FailTimeout time.Duration `yaml:"fail_timeout"`
	// MaxResponseHeaderBytes bounds an origin's response headers; an
	// origin that sends more gets the visitor a 502 page. Default 64 KiB.
	// Needs a restart.
	MaxResponseHeaderBytes int64 `yaml:"max_response_header_bytes"`
	// MaxConns bounds the connections to one origin address (scheme,
	// host and port), in use or idle. A request that cannot get one
	// within timeouts.dial gets a 503 page. Default 256. Needs a restart.
	MaxConns int `yaml:"max_conns"`
	// Client is the HTTP/1.1 client that carries visitors' requests to
	// origins: "edgeblock" (the default) writes each request and reads
	// its response on the request's own goroutine (proxy/origin
	// H1Client), for plain-HTTP origins and HTTPS ones with http2 off;
	// "stdlib" sends everything through net/http's Transport. Needs a
	// restart.
	Client string `yaml:"client"`
	// BodyIdleTimeout bounds the pause between two reads of an origin's
	// response body; past it the origin request is cancelled, the
	// visitor's connection (HTTP/1.1) or stream (HTTP/2) is reset, and the
	// request counts as an error of kind timeout. Default 60s.
	BodyIdleTimeout time.Duration `yaml:"body_idle_timeout"`
	// Upgrades are the Upgrade protocols forwarded to origins (compared
	// without regard to case); any other Upgrade is removed and the
	// request goes on as a plain one. Default [websocket].
	Upgrades []string `yaml:"upgrades"`
	// CookieKey is the secret that signs lb: cookie values; default a
	// random key made at start (sticky sessions then survive reloads,
	// not restarts).
	CookieKey string `yaml:"cookie_key"`
	// Balance holds the defaults of every route's lb, cookie, health,
	// passive, retries and all_down.
	Balance BalanceConfig `yaml:",inline"`
	// ViaName is the received-by name this edge adds to Via on forwarded
	// requests; a request that already carries it is a loop and gets a
	// 508 page. Default the host name, else "edgeblock".
	ViaName string `yaml:"via_name"`
}

// LogConfig configures logging. Command-line flags override it.
type LogConfig struct {
	// Format is json (default) or text.
	Format string `yaml:"format"`
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Access turns the per-request access line on (default) or off.
	Access *bool `yaml:"access"`
	// AccessSample is the fraction of requests logged, 0 < x <= 1;
	// default 1. Errors are always logged.
	AccessSample float64 `yaml:"access_sample"`
	// AccessFile is a file the access lines are appended to (created
	// 0644), reopened on SIGUSR1 after logrotate renamed it. Default
	// empty: the access lines go where the other log lines go (stderr).
	// Either way they are written in batches, off the request path (see
	// accesslog.go). Needs a restart.
	AccessFile string `yaml:"access_file"`
}

// ConfigError lists every problem of a configuration, each as
// "file:line: message" where the line is known.
type ConfigError struct {
	Problems []string
}

// Error returns the problems, one per line.
func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

// LoadConfig reads, parses, defaults and validates the config file. The
// error, if any, is a *ConfigError that lists every problem it found.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Problems: []string{problem.FileError(err)}}
	}
	return ParseConfig(path, data)
}

// fileError reports that the file a config field names (such as
// blocklist.file) cannot be read, as "config:line: field: /abs/path: no
// such file", so that the message leads to both the setting and the file.
func (c *Config) FileError(field []any, err error) error {
	v := validator{path: c.Path, root: c.src}
	return errors.New(v.format(field, "%s", problem.FileError(err)))
}

var yamlLine = regexp.MustCompile(`^\s*line (\d+): (.*)$`)

// ParseConfig is LoadConfig on data read from path. A YAML syntax error
// stops it; otherwise every unknown key, every value of the wrong type and
// every semantic problem is reported, sorted by line.
func ParseConfig(path string, data []byte) (*Config, error) {
	return parseConfig(path, data, nil)
}

// LoadFleetConfig is LoadConfig for the fleet tools (publish, history,
// rollback, pull, fleet status, block -fleet): a config holding only a
// fleet: section is enough. Syntax, unknown keys and values of the wrong
// type are problems anywhere in the file, as for LoadConfig; of the other
// checks, only those of the fleet section and of blocklist.max_drop and
// blocklist.source (which the fleet tools use) count. The Config it
// returns is not fit to serve.
func LoadFleetConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Problems: []string{problem.FileError(err)}}
	}
	return parseConfig(path, data, fleetToolField)
}

// fleetToolField reports whether a check of field matters to the fleet
// tools.
func fleetToolField(field []any) bool {
	if len(field) > 0 && field[0] == "fleet" {
		return true
	}
	switch fieldName(field) {
	case "blocklist.max_drop", "blocklist.source":
		return true
	}
	return false
}

// parseConfig is ParseConfig; with only set, a problem found by validate
// counts only if only(field) is true.
func parseConfig(path string, data []byte, only func(field []any) bool) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &ConfigError{Problems: []string{yamlSyntaxProblem(path, data, err)}}
	}
	c := &Config{Path: path, SHA256: fmt.Sprintf("%x", sha256.Sum256(data)), src: &root}
	v := validator{path: path, root: &root}
	if len(root.Content) > 0 {
		doc := root.Content[0]
		v.checkKeys(doc, reflect.TypeFor[Config](), nil)
		// Decoding goes on past values of the wrong type, which are left
		// at their zero value and reported; validate then checks the rest.
		if err := decodeConfig(doc, c); err != nil {
			if dups, ok := duplicateKeyProblems(path, data, err); ok {
				slices.SortStableFunc(dups, func(a, b string) int { return textLine(path, a) - textLine(path, b) })
				return nil, &ConfigError{Problems: dups}
			}
			// The field at each line, which type errors need, is only
			// noted when there are some: a second walk.
			v.lines = map[int]fieldAt{}
			v.checkKeys(doc, reflect.TypeFor[Config](), nil)
			v.typeErrors(err)
		}
	}
	c.applyDefaults()
	c.validate(&v)
	if only != nil {
		v.problems = slices.DeleteFunc(v.problems, func(p lineProblem) bool { return p.kind == problemCheck && !only(p.field) })
	}
	if problems := v.result(); len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	c.src = withoutRoutes(&root)
	slices.SortStableFunc(c.Warnings, func(a, b string) int { return textLine(path, a) - textLine(path, b) })
	return c, nil
}

// decodeConfig decodes doc into c as doc.Decode does, going on past
// values of the wrong type (a *yaml.TypeError lists them). The routes of
// a plain routes: list are decoded one by one, and a route of no more than
// a host and a list of origin URLs, that of most large configs, straight
// from its nodes, at a fifth of the decoder's cost.
func decodeConfig(doc *yaml.Node, c *Config) error {
	var routes *yaml.Node
	if doc.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(doc.Content); i += 2 {
			switch k := doc.Content[i]; {
			case k.Tag == "!!merge":
				return doc.Decode(c) // routes may come from elsewhere
			case k.Value == "routes" && routes == nil:
				routes = doc.Content[i+1]
			case k.Value == "routes":
				return doc.Decode(c) // the decoder reports the second
			}
		}
	}
	if routes == nil || routes.Kind != yaml.SequenceNode {
		return doc.Decode(c)
	}
	items := routes.Content
	routes.Content = nil
	err := doc.Decode(c)
	routes.Content = items
	var errs []string
	if err != nil {
		te, ok := err.(*yaml.TypeError)
		if !ok {
			return err
		}
		errs = te.Errors
	}
	c.Routes = make([]RouteConfig, len(items))
	for i, n := range items {
		if c.Routes[i].decodePlain(n) {
			continue
		}
		if err := n.Decode(&c.Routes[i]); err != nil {
			te, ok := err.(*yaml.TypeError)
			if !ok {
				return err
			}
			errs = append(errs, te.Errors...)
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// withoutRoutes returns the document root without the entries of its
// routes list, sharing the rest: what a Config keeps for the lines of
// problems found after it is loaded (fileError), which are about other
// sections. The routes are the bulk of a large config's nodes, about
// 900 bytes each per route, which the Config would otherwise hold for as
// long as it is in effect.
func withoutRoutes(root *yaml.Node) *yaml.Node {
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return root
	}
	doc := *root.Content[0]
	doc.Content = slices.Clone(doc.Content)
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "routes" {
			routes := *doc.Content[i+1]
			routes.Content = nil
			doc.Content[i+1] = &routes
		}
	}
	r := *root
	r.Content = []*yaml.Node{&doc}
	return &r
}

// textLine returns the line of a "path:line: ..." message, or 0.
func textLine(path, msg string) int {
	rest, ok := strings.CutPrefix(msg, path+":")
	if !ok {
		return 0
	}
	n, _, _ := strings.Cut(rest, ":")
	line, _ := strconv.Atoi(n)
	return line
}

var yamlTypeError = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")

// typeErrors records the YAML decoder's type errors with the field each is
// about, and in words a reader of the config knows.
func (v *validator) typeErrors(err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		v.addAt(0, nil, problemType, "%v", err)
		return
	}
	for _, e := range te.Errors {
		m := yamlTypeError.FindStringSubmatch(e)
		if m == nil {
			line := 0
			if lm := yamlLine.FindStringSubmatch(e); lm != nil {
				line, _ = strconv.Atoi(lm[1])
				e = lm[2]
			}
			v.addAt(line, v.lines[line].field, problemType, "%s", e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		at := v.lines[line]
		got := map[string]string{"map": "a mapping", "seq": "a list", "null": "nothing"}[m[2]]
		switch {
		case got != "":
		case at.node != nil && at.node.Kind == yaml.ScalarNode:
			got = strconv.Quote(at.node.Value) // the decoder's message shortens it
		default:
			got = strconv.Quote(m[3])
		}
		v.addAt(line, at.field, problemType, "want %s, got %s", typeWords(m[4]), got)
	}
}

// typeWords describes a Go type named in a YAML type error.
func typeWords(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration such as 30s or 1m30s"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "a mapping of keys"
}

// checkKeys reports every key of the mapping n that the struct type t does
// not have, with the full dotted path and the closest known key. It
// descends into nested structs and lists; field is the path of n, which
// checkKeys may extend in place (it copies what it keeps). With v.lines
// set it reports nothing and notes instead the field at each node's line,
// for typeErrors.
//
// A config of many routes has a node per key and value of each: the walk
// looks the struct's keys up in a table built once per type, and builds a
// path or a suggestion only for a key it reports.
func (v *validator) checkKeys(n *yaml.Node, t reflect.Type, field []any) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if v.lines != nil {
		v.lines[n.Line] = fieldAt{slices.Clone(field), n}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Duration]():
		keys := yamlKeys(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				v.checkMerge(val, t, field)
				continue
			}
			ft, ok := keys.types[k.Value]
			if !ok {
				if v.lines == nil {
					msg := "unknown key"
					if s := closest(k.Value, keys.names); s != "" {
						msg += " (did you mean " + s + "?)"
					}
					v.addAt(k.Line, append(slices.Clone(field), k.Value), problemKey, "%s", msg)
				}
				continue
			}
			if !descends(val, ft) && v.lines == nil {
				continue // a scalar: nothing to check below it
			}
			v.checkKeys(val, ft, append(field, k.Value))
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, e := range n.Content {
			if !descends(e, t.Elem()) && v.lines == nil {
				continue
			}
			v.checkKeys(e, t.Elem(), append(field, i))
		}
	}
}

// descends reports whether checkKeys has keys to check in n for type t:
// whether n is a mapping or list (or an alias of one) and t a struct or
// slice. Scalars, the bulk of a document, are skipped without a call.
func descends(n *yaml.Node, t reflect.Type) bool {
	if n.Kind == yaml.ScalarNode {
		return false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct || t.Kind() == reflect.Slice
}

// checkMerge checks the mappings merged in with "<<" against t.
func (v *validator) checkMerge(n *yaml.Node, t reflect.Type, field []any) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		for _, e := range n.Content {
			v.checkKeys(e, t, field)
		}
		return
	}
	v.checkKeys(n, t, field)
}

// keyTable is the YAML keys of a struct type.
type keyTable struct {
	types map[string]reflect.Type // each key's field type
	names []string                // the keys in field order, for suggestions
}

// keyTables caches yamlKeys, by reflect.Type: the config's types are
// few and fixed.
var keyTables sync.Map

// yamlKeys returns the YAML keys of struct type t, with inline structs'
// keys among them. It is safe for concurrent use.
func yamlKeys(t reflect.Type) *keyTable {
	if kt, ok := keyTables.Load(t); ok {
		return kt.(*keyTable)
	}
	kt := &keyTable{types: map[string]reflect.Type{}}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			inner := yamlKeys(f.Type)
			maps.Copy(kt.types, inner.types)
			kt.names = append(kt.names, inner.names...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		kt.types[name] = f.Type
		kt.names = append(kt.names, name)
	}
	got, _ := keyTables.LoadOrStore(t, kt)
	return got.(*keyTable)
}

// closest returns the known key nearest to key, at most two edits away
// (insertions, deletions, substitutions, transpositions), or "".
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD && d < len(key) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// Levenshtein with transpositions of adjacent bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

func (c *Config) applyDefaults() {
	dir := filepath.Dir(c.Path)
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	rel(&c.Blocklist.File)
	rel(&c.Geo.Database)
	rel(&c.Pages.Template)
	for k, f := range c.Pages.Templates {
		rel(&f)
		c.Pages.Templates[k] = f
	}
	rel(&c.Pages.LanguagesDir)
	if c.Pages.RetryAfter == nil {
		d := 30 * time.Second
		c.Pages.RetryAfter = &d
	}
	if c.Pages.DefaultLanguage == "" {
		c.Pages.DefaultLanguage = "en"
	}
	rel(&c.TLS.CARoot)
	rel(&c.TLS.Storage)
	rel(&c.Admin.TokensFile)
	rel(&c.Admin.ClientCA)
	rel(&c.Admin.TLSCert)
	rel(&c.Admin.TLSKey)
	relTLS := func(t *OriginTLSConfig) {
		if t != nil {
			rel(&t.CAFile)
			rel(&t.ClientCert)
			rel(&t.ClientKey)
		}
	}
	relTLS(c.Origins.Balance.OriginTLS)
	for i := range c.Routes {
		relTLS(c.Routes[i].Balance.OriginTLS)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Timeouts.ReadHeader, 10*time.Second)
	def(&c.Timeouts.Idle, 120*time.Second)
	def(&c.Timeouts.Dial, 5*time.Second)
	def(&c.Timeouts.ResponseHeader, 60*time.Second)
	def(&c.Timeouts.Grace, 30*time.Second)
	def(&c.Timeouts.WriteIdle, 30*time.Second)
	def(&c.Timeouts.BodyRead, 30*time.Second)
	if c.Timeouts.Drain == nil {
		d := 5 * time.Second
		c.Timeouts.Drain = &d
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defInt(&c.Limits.MaxStreamsPerConn, 100)
	defInt(&c.Limits.MaxConnsPerClient, 256)
	defInt(&c.Limits.MaxRequestsPerClient, 128)
	defInt(&c.Limits.QUICPendingHandshakes, DefaultQUICPendingHandshakes)
	def(&c.Origins.FailTimeout, 10*time.Second)
	def(&c.Origins.BodyIdleTimeout, 60*time.Second)
	if c.Origins.MaxResponseHeaderBytes == 0 {
		c.Origins.MaxResponseHeaderBytes = 64 << 10
	}
	if c.Origins.Client == "" {
		c.Origins.Client = "edgeblock"
	}
	if c.Origins.MaxConns == 0 {
		c.Origins.MaxConns = 256
	}
	if c.Origins.Upgrades == nil {
		c.Origins.Upgrades = []string{"websocket"}
	}
	if c.Origins.ViaName == "" {
		c.Origins.ViaName = hostnameOr("edgeblock", os.Hostname)
	}
	if c.Blocklist.Source == "" {
		c.Blocklist.Source = SourceFile
	}
	if f := c.Fleet; f != nil {
		rel(&f.Redis.PasswordFile)
		rel(&f.Redis.SentinelPasswordFile)
		rel(&f.Redis.TLS.CAFile)
		rel(&f.Redis.TLS.CertFile)
		rel(&f.Redis.TLS.KeyFile)
		c.fleetErr = f.ApplyDefaults()
	}
	def(&c.Blocklist.Debounce, 100*time.Millisecond)
	def(&c.Blocklist.PollInterval, 30*time.Second)
	if c.Blocklist.MaxDrop == 0 {
		c.Blocklist.MaxDrop = 0.5
	}
	if c.Blocklist.Watch == nil {
		on := true
		c.Blocklist.Watch = &on
	}
	if c.Listen.Admin == "" {
		c.Listen.Admin = "127.0.0.1:9090"
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.TLS.Mode == "" {
		c.TLS.Mode = "off"
	}
	if c.TLS.CA == "" {
		c.TLS.CA = LetsEncryptProduction
		if c.TLS.Staging {
			c.TLS.CA = LetsEncryptStaging
		}
	}
	if c.TLS.Storage == "" {
		c.TLS.Storage = defaultStorage()
	}
	if c.TLS.RedirectHTTP == nil {
		on := c.TLS.Mode != "off" && c.Listen.HTTPS != ""
		c.TLS.RedirectHTTP = &on
	}
	if c.TLS.Challenges == nil {
		c.TLS.Challenges = []string{"http-01", "tls-alpn-01"}
	}
	if c.TLS.ManageAheadLimit == 0 {
		c.TLS.ManageAheadLimit = 1000
	}
	if c.TLS.OnDemand.MaxNewPerHour == 0 {
		c.TLS.OnDemand.MaxNewPerHour = 10
	}
	if c.TLS.OnDemand.MaxNames == 0 {
		c.TLS.OnDemand.MaxNames = 1000
	}
	def(&c.TLS.OnDemand.AskTimeout, 5*time.Second)
	if c.TLS.CacheCapacity == 0 {
		c.TLS.CacheCapacity = 10000
	}
	if c.TLS.KeyType == "" {
		c.TLS.KeyType = "p256"
	}
	def(&c.TLS.InternalLifetime, certmgr.DefaultInternalLifetime)
	dnsDefaults := func(d *DNSConfig) {
		if d == nil {
			return
		}
		rel(&d.KeySecretFile)
		if d.KeyAlg == "" {
			d.KeyAlg = "hmac-sha256"
		}
		def(&d.PropagationTimeout, 2*time.Minute)
	}
	dnsDefaults(c.TLS.DNS)
	for i := range c.Routes {
		dnsDefaults(c.Routes[i].TLS.DNS)
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Access == nil {
		on := true
		c.Log.Access = &on
	}
	if c.Log.AccessSample == 0 {
		c.Log.AccessSample = 1
	}
}

// The ACME directories of Let's Encrypt.
const (
	LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

func defaultStorage() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "edgeblock")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "edgeblock")
	}
	return "edgeblock-data"
}

// validator collects problems with the line of the field they are about.
type validator struct {
	path     string
	root     *yaml.Node
	lines    map[int]fieldAt // the deepest field at each line, for type errors
	problems []lineProblem
	// originTLS is the outcome of checking each distinct origin_tls block.
	originTLS map[OriginTLSConfig]error
}

// fieldAt is a field path and its YAML node.
type fieldAt struct {
	field []any
	node  *yaml.Node
}

// lineProblem is one problem of a config, at its line.
type lineProblem struct {
	line  int
	field []any
	kind  problemKind
	text  string // "file:line: field: message"
}

type problemKind int

const (
	problemCheck problemKind = iota // found by validate
	problemKey                      // an unknown key
	problemType                     // a value of the wrong type
)

// addProblems records the problems a section reported, its paths below
// the section at field.
func (v *validator) addProblems(field []any, ps problem.List) {
	for _, p := range ps {
		v.addf(p.Path.Under(field...), "%s", p.Msg)
	}
}

// addf records a problem about the field at path (keys and indexes, such
// as "routes", 0, "origins", 1).
func (v *validator) addf(field []any, format string, args ...any) {
	v.addAt(lineOf(v.root, field), field, problemCheck, format, args...)
}

// addAt records a problem at a known line.
func (v *validator) addAt(line int, field []any, kind problemKind, format string, args ...any) {
	v.problems = append(v.problems, lineProblem{line: line, field: field, kind: kind,
		text: formatProblem(v.path, line, field, fmt.Sprintf(format, args...))})
}

// format returns "file:line: field: message" for the field at path.
func (v *validator) format(field []any, format string, args ...any) string {
	return formatProblem(v.path, lineOf(v.root, field), field, fmt.Sprintf(format, args...))
}

func formatProblem(path string, line int, field []any, msg string) string {
	loc := path
	if line > 0 {
		loc += ":" + strconv.Itoa(line)
	}
	if name := fieldName(field); name != "" {
		return fmt.Sprintf("%s: %s: %s", loc, name, msg)
	}
	return loc + ": " + msg
}

// result returns the problems sorted by line. A check of a field whose
// value had the wrong type (and so was left at its zero value) is left
// out: the type error says what is wrong with it.
func (v *validator) result() []string {
	var bad [][]any
	for _, p := range v.problems {
		if p.kind == problemType {
			bad = append(bad, p.field)
		}
	}
	var out []lineProblem
	for _, p := range v.problems {
		if p.kind == problemCheck && slices.ContainsFunc(bad, func(f []any) bool { return related(f, p.field) }) {
			continue
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b lineProblem) int { return a.line - b.line })
	texts := make([]string, len(out))
	for i, p := range out {
		texts[i] = p.text
	}
	return texts
}

// related reports whether one field path is a prefix of the other.
func related(a, b []any) bool {
	n := min(len(a), len(b))
	return n > 0 && slices.Equal(a[:n], b[:n])
}

func fieldName(field []any) string { return problem.Path(field).String() }

// lineOf returns the line of the deepest node along field that exists in
// the document, or 0.
func lineOf(root *yaml.Node, field []any) int {
	if root == nil || len(root.Content) == 0 {
		return 0
	}
	n := root.Content[0]
	line := 0
	for _, f := range field {
		var next *yaml.Node
		switch f := f.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == f {
						next = n.Content[i+1]
						line = n.Content[i].Line
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && f < len(n.Content) {
				next = n.Content[f]
			}
		}
		if next == nil {
			return line
		}
		n = next
		line = n.Line
	}
	return line
}

func (c *Config) validate(v *validator) {
	if c.Listen.HTTP == "" && c.Listen.HTTPS == "" {
		v.addf([]any{"listen"}, "no public listener: set http, https or both")
	}
	for _, l := range []struct {
		name, addr string
	}{{"http", c.Listen.HTTP}, {"https", c.Listen.HTTPS}, {"admin", c.Listen.Admin}, {"quic", c.Listen.QUIC}} {
		if l.addr == "" || (l.name == "admin" && l.addr == "off") {
			continue
		}
		if _, port, err := net.SplitHostPort(l.addr); err != nil {
			v.addf([]any{"listen", l.name}, "%q is not host:port", l.addr)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			v.addf([]any{"listen", l.name}, "%q has a bad port", l.addr)
		}
	}
	c.validateQUIC(v)
	switch c.TLS.Mode {
	case "off":
	case "internal", "acme":
		if c.Listen.HTTPS == "" {
			v.addf([]any{"tls", "mode"}, "mode %s needs listen.https", c.TLS.Mode)
		}
	default:
		v.addf([]any{"tls", "mode"}, "%q: want off, internal or acme", c.TLS.Mode)
	}
	if c.TLS.Mode == "off" && c.Listen.HTTPS != "" {
		c.Warnings = append(c.Warnings, v.format([]any{"listen", "https"}, "set, but tls.mode is off: the HTTPS listener is not started (set tls.mode to internal or acme)"))
	}
	if c.TLS.Mode == "acme" {
		if u, err := url.Parse(c.TLS.CA); err != nil || u.Scheme != "https" || u.Host == "" {
			v.addf([]any{"tls", "ca"}, "%q is not an https URL", c.TLS.CA)
		}
	}
	if len(c.TLS.Challenges) == 0 {
		v.addf([]any{"tls", "challenges"}, "empty: want http-01, tls-alpn-01 or both")
	}
	for i, ch := range c.TLS.Challenges {
		if ch != "http-01" && ch != "tls-alpn-01" {
			v.addf([]any{"tls", "challenges", i}, "%q: want http-01 or tls-alpn-01", ch)
		}
	}
	if c.TLS.Mode == "acme" && slices.Contains(c.TLS.Challenges, "http-01") && c.Listen.HTTP == "" {
		v.addf([]any{"tls", "challenges"}, "http-01 needs listen.http")
	}
	if c.TLS.RedirectPort < 0 || c.TLS.RedirectPort > 65535 {
		v.addf([]any{"tls", "redirect_port"}, "%d is not a port", c.TLS.RedirectPort)
	}
	for _, f := range []struct {
		key string
		val int
	}{{"max_new_per_hour", c.TLS.OnDemand.MaxNewPerHour}, {"max_names", c.TLS.OnDemand.MaxNames}} {
		if f.val < 0 {
			v.addf([]any{"tls", "on_demand", f.key}, "must not be negative")
		}
	}
	if c.TLS.OnDemand.AskTimeout < 0 {
		v.addf([]any{"tls", "on_demand", "ask_timeout"}, "must not be negative")
	}
	if a := c.TLS.OnDemand.Ask; a != "" {
		if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			v.addf([]any{"tls", "on_demand", "ask"}, "%q: want an http:// or https:// URL without a fragment", a)
		}
	}
	c.validateDNS(v, []any{"tls", "dns"}, c.TLS.DNS)
	for i := range c.Routes {
		r := &c.Routes[i]
		c.validateDNS(v, []any{"routes", i, "tls", "dns"}, r.TLS.DNS)
		if !r.WildcardCert() {
			continue
		}
		if !strings.HasPrefix(r.Host, "*.") {
			v.addf([]any{"routes", i, "tls"}, "a wildcard certificate needs a *.name host, not %q", r.Host)
		} else if c.TLS.Mode == "acme" && c.DNSFor(r) == nil {
			v.addf([]any{"routes", i, "tls", "wildcard"}, "needs tls.dns or routes[%d].tls.dns: an ACME CA issues wildcard certificates through DNS-01 only", i)
		}
	}
	if c.TLS.InternalLifetime < 10*time.Second {
		v.addf([]any{"tls", "internal_lifetime"}, "%s: want at least 10s", c.TLS.InternalLifetime)
	}
	if c.TLS.CacheCapacity < 0 {
		v.addf([]any{"tls", "cache_capacity"}, "must not be negative")
	}
	if !slices.Contains([]string{"p256", "p384", "rsa2048", "rsa4096"}, c.TLS.KeyType) {
		v.addf([]any{"tls", "key_type"}, "%q: want p256, p384, rsa2048 or rsa4096", c.TLS.KeyType)
	}
	if c.TLS.CARoot != "" {
		if _, err := os.Stat(c.TLS.CARoot); err != nil {
			v.addf([]any{"tls", "ca_root"}, "%s", problem.FileError(err))
		}
	}
	switch c.Blocklist.Source {
	case SourceFile:
		if c.Blocklist.File == "" {
			v.addf([]any{"blocklist", "file"}, "required")
		}
	case SourceFleet:
		if c.Fleet == nil {
			v.addf([]any{"blocklist", "source"}, "fleet needs the fleet section (fleet.redis.addr at least)")
		}
	default:
		v.addf([]any{"blocklist", "source"}, "%q: want file or fleet", c.Blocklist.Source)
	}
	if c.Fleet != nil {
		if c.fleetErr != nil {
			v.addf([]any{"fleet", "node"}, "%v", strings.TrimPrefix(c.fleetErr.Error(), "fleet.node: "))
		}
		for _, p := range c.Fleet.Validate() {
			field, msg := p.Path.Under("fleet"), p.Msg
			if p.Path.String() == "redis.addr" && strings.HasPrefix(msg, "required") {
				// About the section, so that a type error in addrs is
				// not followed by this derived complaint.
				field, msg = []any{"fleet", "redis"}, "addr or addrs is required"
			}
			v.addf(field, "%s", msg)
		}
	}
	for _, f := range []struct {
		key, val string
	}{{"policy", c.Blocklist.Policy}, {"blocked_by", c.Blocklist.BlockedBy}} {
		if f.val == "" {
			continue
		}
		if u, err := url.Parse(f.val); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.addf([]any{"blocklist", f.key}, "%q is not an absolute http or https URL", f.val)
		} else if strings.ContainsFunc(f.val, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`<>"\^{|}`+"`", r) }) {
			v.addf([]any{"blocklist", f.key}, "%q: a URL must not hold spaces, control characters, non-ASCII, or any of <>\"\\^`{|} (percent-encode them)", f.val)
		}
	}
	c.validatePages(v)
	if c.Blocklist.MaxDrop < 0 || c.Blocklist.MaxDrop > 1 {
		v.addf([]any{"blocklist", "max_drop"}, "%v: want a share in (0, 1], such as 0.5", c.Blocklist.MaxDrop)
	}
	seen := map[string]int{}
	for i, r := range c.Routes {
		name, wild := strings.CutPrefix(r.Host, "*.")
		n, err := blocklist.Normalize(name)
		switch {
		case r.Host == "":
			v.addf([]any{"routes", i, "host"}, "required")
		case strings.ContainsAny(name, "*/:"):
			v.addf([]any{"routes", i, "host"}, "%q: want a name or *.name", r.Host)
		case err != nil:
			v.addf([]any{"routes", i, "host"}, "%v", err)
		case wild && (strings.IndexByte(n, ':') >= 0 || net.ParseIP(n) != nil):
			// "*.0.2.7" normalizes to the address 0.2.0.7: a wildcard over
			// an address covers nothing.
			v.addf([]any{"routes", i, "host"}, "%q: a wildcard needs a name, not an IP address", r.Host)
		default:
			key := n
			if wild {
				key = "*." + n
			}
			if j, dup := seen[key]; dup {
				v.addf([]any{"routes", i, "host"}, "%q is also routes[%d]", r.Host, j)
			}
			seen[key] = i
		}
		if len(r.Origins) == 0 {
			v.addf([]any{"routes", i, "origins"}, "at least one origin is required")
		}
		labels := map[string]int{}
		for j, os := range r.Origins {
			o := os.URL
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.addf([]any{"routes", i, "origins", j}, "%q: want http://host:port or https://host:port", o)
			} else if u.RawQuery != "" || u.Fragment != "" {
				v.addf([]any{"routes", i, "origins", j}, "%q: no query or fragment allowed", o)
			} else if k, dup := labels[origin.Label(u)]; dup {
				v.addf([]any{"routes", i, "origins", j}, "%q is also origins[%d]", o, k)
			} else {
				labels[origin.Label(u)] = j
			}
			if os.Weight < 0 {
				v.addf([]any{"routes", i, "origins", j, "weight"}, "must not be negative")
			}
		}
		r.Balance.validate(c, v, []any{"routes", i})
	}
	c.Origins.Balance.validate(c, v, []any{"origins"})
	c.validateGeo(v)
	for i, s := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(s); err != nil {
			if _, err := netip.ParseAddr(s); err != nil {
				v.addf([]any{"trusted_proxies", i}, "%q is not a CIDR or an IP address", s)
				continue
			}
		}
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{{"read_header", c.Timeouts.ReadHeader}, {"idle", c.Timeouts.Idle}, {"dial", c.Timeouts.Dial}, {"response_header", c.Timeouts.ResponseHeader}, {"grace", c.Timeouts.Grace},
		{"drain", *c.Timeouts.Drain}, {"write_idle", c.Timeouts.WriteIdle}, {"body_read", c.Timeouts.BodyRead}} {
		if d.val < 0 {
			v.addf([]any{"timeouts", d.key}, "must not be negative")
		}
	}
	for _, l := range []struct {
		key string
		val int
	}{{"max_streams_per_conn", c.Limits.MaxStreamsPerConn}, {"max_conns_per_client", c.Limits.MaxConnsPerClient}, {"max_requests_per_client", c.Limits.MaxRequestsPerClient}, {"quic_pending_handshakes", c.Limits.QUICPendingHandshakes}} {
		if l.val < 0 {
			v.addf([]any{"limits", l.key}, "must not be negative")
		}
	}
	if c.Origins.FailTimeout < 0 {
		v.addf([]any{"origins", "fail_timeout"}, "must not be negative")
	}
	if c.Origins.BodyIdleTimeout < 0 {
		v.addf([]any{"origins", "body_idle_timeout"}, "must not be negative")
	}
	if c.Origins.MaxResponseHeaderBytes < 0 {
		v.addf([]any{"origins", "max_response_header_bytes"}, "must not be negative")
	}
	if c.Origins.MaxConns < 0 {
		v.addf([]any{"origins", "max_conns"}, "must not be negative")
	}
	if c.Origins.Client != "edgeblock" && c.Origins.Client != "stdlib" {
		v.addf([]any{"origins", "client"}, "%q: want edgeblock or stdlib", c.Origins.Client)
	}
	for i, u := range c.Origins.Upgrades {
		if !IsToken(u) {
			v.addf([]any{"origins", "upgrades", i}, "%q is not a protocol name (an HTTP token)", u)
		}
	}
	if !IsToken(c.Origins.ViaName) {
		v.addf([]any{"origins", "via_name"}, "%q: want an HTTP token (letters, digits, and !#$%%&'*+-.^_`|~)", c.Origins.ViaName)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		v.addf([]any{"log", "format"}, "%q: want json or text", c.Log.Format)
	}
	if m := c.GC.MemoryLimit; m != "" && m != "auto" && m != "off" {
		if _, err := ParseSize(m); err != nil {
			v.addf([]any{"gc", "memory_limit"}, "%v", err)
		}
	}
	if c.GC.Percent < -1 {
		v.addf([]any{"gc", "percent"}, "%d: want a percentage, or -1 for no collection but the memory limit's", c.GC.Percent)
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		v.addf([]any{"log", "level"}, "%v", err)
	}
	if c.Log.AccessSample < 0 || c.Log.AccessSample > 1 {
		v.addf([]any{"log", "access_sample"}, "%v: want a fraction in (0, 1]", c.Log.AccessSample)
	}
	if c.MaxHeaderBytes < 0 {
		v.addf([]any{"max_header_bytes"}, "must not be negative")
	}
	probs, warns := c.Admin.Check(c.Listen.Admin)
	v.addProblems([]any{"admin"}, probs)
	for _, w := range warns {
		c.Warnings = append(c.Warnings, v.format(w.Path.Under("admin"), "%s", w.Msg))
	}
	if c.looksLikeProduction() {
		c.warnPlaceholders(v)
		if c.Pages.Operator == "" {
			c.Warnings = append(c.Warnings, v.format([]any{"pages", "operator"}, "not set: the block page cannot say who blocked the site (set your organisation's name; see pages.contact and pages.appeal too)"))
		}
	}
}

// validateDNS checks a DNS-01 setup at field, if any.
func (c *Config) validateDNS(v *validator, field []any, d *DNSConfig) {
	if d == nil {
		return
	}
	at := func(key string) []any { return append(slices.Clip(field), key) }
	if d.Provider != "rfc2136" {
		v.addf(at("provider"), "%q: want rfc2136", d.Provider)
	}
	for _, s := range append([]string{d.Server}, d.Resolvers...) {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			key := "server"
			if s != d.Server {
				key = "resolvers"
			}
			v.addf(at(key), "%q is not host:port", s)
		}
	}
	if d.KeyName == "" {
		v.addf(at("key_name"), "required")
	}
	if !slices.Contains(certs.TSIGAlgorithms, d.KeyAlg) {
		v.addf(at("key_alg"), "%q: want one of %s", d.KeyAlg, strings.Join(certs.TSIGAlgorithms, ", "))
	}
	if d.KeySecretFile == "" {
		v.addf(at("key_secret_file"), "required")
	} else if _, err := os.Stat(d.KeySecretFile); err != nil {
		v.addf(at("key_secret_file"), "%s", problem.FileError(err))
	}
}

// looksLikeProduction reports whether the config obtains certificates from
// a public ACME CA: tls.mode acme, not Let's Encrypt staging, and no
// tls.ca_root (which only a private CA needs). Placeholders are warned
// about only then, so demos and tests against a private CA stay quiet.
func (c *Config) looksLikeProduction() bool {
	return c.TLS.Mode == "acme" && c.TLS.CA != LetsEncryptStaging && c.TLS.CARoot == ""
}

// warnPlaceholders adds a warning for every setting that still names a
// documentation domain (RFC 2606: example.com, example.net, example.org
// and the .example top-level domain), as copied from an example config.
func (c *Config) warnPlaceholders(v *validator) {
	warn := func(field []any, value, host string) {
		if isPlaceholder(host) {
			c.Warnings = append(c.Warnings, v.format(field, "%q names %s, a documentation placeholder (RFC 2606): replace it with your own", value, host))
		}
	}
	urlHost := func(s string) string {
		if u, err := url.Parse(s); err == nil {
			return u.Hostname()
		}
		return ""
	}
	warn([]any{"blocklist", "policy"}, c.Blocklist.Policy, urlHost(c.Blocklist.Policy))
	warn([]any{"blocklist", "blocked_by"}, c.Blocklist.BlockedBy, urlHost(c.Blocklist.BlockedBy))
	warn([]any{"pages", "appeal"}, c.Pages.Appeal, urlHost(c.Pages.Appeal))
	if addr, ok := strings.CutPrefix(c.Pages.Contact, "mailto:"); ok {
		_, domain, _ := strings.Cut(addr, "@")
		warn([]any{"pages", "contact"}, c.Pages.Contact, domain)
	} else {
		warn([]any{"pages", "contact"}, c.Pages.Contact, urlHost(c.Pages.Contact))
	}
	if _, domain, ok := strings.Cut(c.TLS.Email, "@"); ok {
		warn([]any{"tls", "email"}, c.TLS.Email, domain)
	}
	for i, r := range c.Routes {
		warn([]any{"routes", i, "host"}, r.Host, strings.TrimPrefix(r.Host, "*."))
		for j, o := range r.Origins {
			warn([]any{"routes", i, "origins", j}, o.URL, urlHost(o.URL))
		}
	}
}

// isPlaceholder reports whether host is or is under a documentation domain.
func isPlaceholder(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, d := range []string{"example.com", "example.net", "example.org", "example"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// restartFields names the settings a reload cannot change, with their
// values, so that a reload can log which of them changed.
func (c *Config) RestartFields() map[string]string {
	return map[string]string{
		"listen.http": c.Listen.HTTP, "listen.https": c.Listen.HTTPS, "listen.admin": c.Listen.Admin,
		"listen.quic": c.Listen.QUIC, "listen.quic_advertise_port": strconv.Itoa(c.Listen.QUICAdvertisePort),
		"tls.mode": c.TLS.Mode, "tls.ca": c.TLS.CA, "tls.ca_root": c.TLS.CARoot, "tls.email": c.TLS.Email,
		"tls.storage": c.TLS.Storage, "tls.redirect_http": strconv.FormatBool(*c.TLS.RedirectHTTP),
		"tls.redirect_port": strconv.Itoa(c.TLS.RedirectPort), "tls.challenges": strings.Join(c.TLS.Challenges, ","),
		"admin.pprof": strconv.FormatBool(c.Admin.Pprof), "admin.tokens_file": c.Admin.TokensFile, "admin.client_ca": c.Admin.ClientCA,
		"admin.tls_cert": c.Admin.TLSCert, "admin.tls_key": c.Admin.TLSKey, "admin.auth_reads": strconv.FormatBool(c.Admin.AuthReads),
		"admin.hosts": strings.Join(c.Admin.Hosts, ","), "admin.cert_scopes": fmt.Sprint(c.Admin.CertScopes),
		"max_header_bytes":     strconv.Itoa(c.MaxHeaderBytes),
		"timeouts.read_header": c.Timeouts.ReadHeader.String(), "timeouts.idle": c.Timeouts.Idle.String(),
		"timeouts.dial": c.Timeouts.Dial.String(), "timeouts.response_header": c.Timeouts.ResponseHeader.String(),
		"timeouts.grace": c.Timeouts.Grace.String(), "tls.manage_ahead_limit": strconv.Itoa(c.TLS.ManageAheadLimit),
		"tls.on_demand": fmt.Sprint(c.TLS.OnDemand), "tls.cache_capacity": strconv.Itoa(c.TLS.CacheCapacity), "tls.key_type": c.TLS.KeyType,
		"tls.internal_lifetime": c.TLS.InternalLifetime.String(), "tls.dns": DNSString(c.TLS.DNS),
		"log.format": c.Log.Format, "log.level": c.Log.Level, "log.access_file": c.Log.AccessFile,
		"gc.memory_limit": c.GC.MemoryLimit, "gc.percent": strconv.Itoa(c.GC.Percent),
		"blocklist.watch": strconv.FormatBool(*c.Blocklist.Watch), "blocklist.debounce": c.Blocklist.Debounce.String(),
		"blocklist.poll_interval": c.Blocklist.PollInterval.String(),
		"blocklist.source":        c.Blocklist.Source, "fleet": fleetSummary(c.Fleet),
		// origins: transport settings, fixed when the proxy is built.
		"origins.max_response_header_bytes": strconv.FormatInt(c.Origins.MaxResponseHeaderBytes, 10), "origins.max_conns": strconv.Itoa(c.Origins.MaxConns),
		"origins.client": c.Origins.Client,
		"timeouts.drain": c.Timeouts.Drain.String(), "timeouts.write_idle": c.Timeouts.WriteIdle.String(),
		"timeouts.body_read":             c.Timeouts.BodyRead.String(),
		"limits.max_streams_per_conn":    strconv.Itoa(c.Limits.MaxStreamsPerConn),
		"limits.max_conns_per_client":    strconv.Itoa(c.Limits.MaxConnsPerClient),
		"limits.max_requests_per_client": strconv.Itoa(c.Limits.MaxRequestsPerClient),
		"limits.quic_pending_handshakes": strconv.Itoa(c.Limits.QUICPendingHandshakes),
	}
}

// fleetSummary is the fleet section in one string, for restartFields: the
// connection is made once, at start.
func fleetSummary(f *fleet.Config) string {
	if f == nil {
		return "none"
	}
	return fmt.Sprintf("%+v", *f)
}

// validatePages checks the pages section; the template and translation
// files themselves are checked when the renderer is built (loadRenderer).
func (c *Config) validatePages(v *validator) {
	pc := &c.Pages
	for k, f := range pc.Templates {
		if !slices.Contains(pages.TemplateKeys, k) {
			v.addf([]any{"pages", "templates", k}, "unknown page %q (want one of %s)", k, strings.Join(pages.TemplateKeys, ", "))
		} else if f == "" {
			v.addf([]any{"pages", "templates", k}, "empty: want a template file")
		}
	}
	if pc.Template != "" && pc.Templates["block"] != "" {
		v.addf([]any{"pages", "template"}, "also given as pages.templates.block: keep one")
	}
	badURL := func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`<>"\^{|}`+"`", r) })
	}
	if u := pc.Contact; u != "" {
		pu, err := url.Parse(u)
		switch {
		case err == nil && pu.Scheme == "mailto" && strings.Contains(pu.Opaque, "@") && !badURL(u):
		case err == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.Host != "" && !badURL(u):
		default:
			v.addf([]any{"pages", "contact"}, "%q: want an absolute http or https URL or mailto:name@example.com (percent-encode spaces and <>\"\\^`{|})", u)
		}
	}
	if u := pc.Appeal; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || badURL(u) {
			v.addf([]any{"pages", "appeal"}, "%q: want an absolute http or https URL (percent-encode spaces and <>\"\\^`{|})", u)
		}
	}
	if pc.RetryAfter != nil && *pc.RetryAfter < 0 {
		v.addf([]any{"pages", "retry_after"}, "must not be negative")
	}
	if strings.ContainsFunc(pc.Operator, unicode.IsControl) {
		v.addf([]any{"pages", "operator"}, "holds a control character")
	}
}

// hostnameOr returns the machine's host name, or def.
func hostnameOr(def string, hostname func() (string, error)) string {
	if h, err := hostname(); err == nil && h != "" && IsToken(h) {
		return h
	}
	return def
}

func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// validateQUIC checks listen.quic and listen.quic_advertise_port (the
// address form itself is checked with the other listeners).
func (c *Config) validateQUIC(v *validator) {
	if p := c.Listen.QUICAdvertisePort; p < 0 || p > 65535 {
		v.addf([]any{"listen", "quic_advertise_port"}, "%d is not a port (1-65535, or 0 for the port of listen.quic)", p)
	}
	if c.Listen.QUIC == "" {
		if c.Listen.QUICAdvertisePort != 0 {
			v.addf([]any{"listen", "quic_advertise_port"}, "set, but listen.quic is not: set listen.quic (HTTP/3) or remove it")
		}
		return
	}
	if c.Listen.HTTPS == "" || c.TLS.Mode == "off" {
		v.addf([]any{"listen", "quic"}, "HTTP/3 needs the HTTPS listener: set listen.https and tls.mode internal or acme")
	}
}

// ParseLevel parses debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// DefaultQUICPendingHandshakes is the default of limits.quic_pending_handshakes:
// about 150 MiB of handshake state at most (about 150 KiB each, heap and
// goroutine stacks, measured in deploy/bench/README.md), far above what
// real visitors keep under way (new connections per second × the round
// trip time: 1000/s at 100 ms is 100).
const DefaultQUICPendingHandshakes = 1000
