package config

import (
	"strings"

	"github.com/edgeblock/edgeblock/blocklist"
	"golang.org/x/net/http/httpguts"
)

// GeoConfig says where a visitor's country comes from, for blocklist rules
// scoped to countries (countries=, except_countries=). The zero value
// knows no country: every visitor is of unknown country.
type GeoConfig struct {
	// Database is a MaxMind-format country (or city) database, such as
	// GeoLite2-Country.mmdb or DB-IP's country lite database. It is read
	// into memory and read again when the file changes (by the same
	// watcher and poll as the blocklist); a file that fails to load keeps
	// the last good one. Relative to the config file. Default none.
	Database string `yaml:"database"`
	// Header is a request header that a trusted proxy (trusted_proxies)
	// sets to the visitor's country code, such as CF-IPCountry. It is
	// honoured only from trusted proxies and removed from every other
	// request before it reaches an origin. When a trusted proxy's header
	// names no country (absent, XX, T1), the database decides. Default
	// none.
	Header string `yaml:"header"`
	// Unknown is what a scoped rule without unknown= does for a visitor
	// of unknown country: allow (the default: the rule does not apply)
	// or block (it does).
	Unknown string `yaml:"unknown"`
}

// TransparencyConfig configures the public record of the rules marked
// publish=yes.
type TransparencyConfig struct {
	// Host is the host name the edge serves the transparency feed on:
	// the HTML page at / and the JSON document at /blocks.json. Default
	// none: no feed.
	Host string `yaml:"host"`
}

// unknownBlocks reports whether geo.unknown is block.
func (g *GeoConfig) UnknownBlocks() bool { return g.Unknown == "block" }

// geoManagedHeaders are the headers geo.header must not name: the edge
// sets or checks them itself.
var geoManagedHeaders = []string{"Host", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "Forwarded", "Via", "Connection", "Cookie", "Authorization", "Accept", "Accept-Language"}

// validateGeo checks the geo and transparency sections.
func (c *Config) validateGeo(v *validator) {
	g := &c.Geo
	switch g.Unknown {
	case "", "allow", "block":
	default:
		v.addf([]any{"geo", "unknown"}, "%q: want allow or block", g.Unknown)
	}
	if g.Header != "" {
		switch {
		case !httpguts.ValidHeaderFieldName(g.Header):
			v.addf([]any{"geo", "header"}, "%q is not a header name", g.Header)
		case strings.Contains(g.Header, "_"):
			v.addf([]any{"geo", "header"}, "%q: a header name with '_' (some servers read it as '-'); use '-'", g.Header)
		case containsFold(geoManagedHeaders, g.Header):
			v.addf([]any{"geo", "header"}, "%q is a header the edge sets or reads itself; name the header your proxy puts the country in, such as CF-IPCountry", g.Header)
		case len(c.TrustedProxies) == 0:
			c.Warnings = append(c.Warnings, v.format([]any{"geo", "header"}, "set, but trusted_proxies is empty: the header is honoured from no one (and removed from every request)"))
		}
	}
	if h := c.Transparency.Host; h != "" {
		if _, err := blocklist.Normalize(h); err != nil {
			v.addf([]any{"transparency", "host"}, "%q: %v", h, err)
		}
	}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
