package config

import (
	"fmt"
	"time"

	"github.com/edgeblock/edgeblock/proxy/admin"
	"github.com/edgeblock/edgeblock/proxy/certmgr"
	"github.com/edgeblock/edgeblock/proxy/certs"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/origin"
	"go.yaml.in/yaml/v3"
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
	// Config is how certificates are obtained, stored and kept: mode, ca,
	// ca_root, email, storage, challenges, manage_ahead_limit, on_demand,
	// cache_capacity, key_type and internal_lifetime, owned by the
	// certificate manager.
	certmgr.Config `yaml:",inline"`
	// Staging switches the default of CA to Let's Encrypt staging.
	Staging bool `yaml:"staging"`
	// RedirectHTTP sends plain-HTTP requests to https with a 308. Default
	// true whenever Mode is not off and an HTTPS listener is configured.
	RedirectHTTP *bool `yaml:"redirect_http"`
	// RedirectPort is the https port named in redirects, for when the
	// public port differs from listen.https (a Kubernetes Service mapping
	// 443 to 8443). Default: the port of listen.https; 443 is left out.
	RedirectPort int `yaml:"redirect_port"`
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

// OriginSpec is one origin of a route: "http://10.0.0.1:8080", or
// {url: http://10.0.0.1:8080, weight: 3}.
type OriginSpec struct {
	// URL is the origin's http:// or https:// base URL.
	URL string `yaml:"url"`
	// Weight is the origin's share of the route's requests relative to
	// the others'. Default 1.
	Weight int `yaml:"weight"`
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
