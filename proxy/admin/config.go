package admin

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/problem"
)

// Config configures the admin listener. Changing it needs a restart.
type Config struct {
	// Pprof serves net/http/pprof under /debug/pprof/. Default false.
	Pprof bool `yaml:"pprof"`
	// TokensFile names the bearer tokens of the /v1 API, one per line as
	// "name:scope:sha256-hex-of-token" (or "name scope token", the token in
	// the clear); scope is read or write. See parseTokens. Empty: no
	// tokens.
	TokensFile string `yaml:"tokens_file"`
	// ClientCA is a PEM file of the CAs whose client certificates
	// authenticate to the /v1 API (the certificate's CN is the actor). It
	// needs TLSCert and TLSKey. Empty: no client certificates.
	ClientCA string `yaml:"client_ca"`
	// TLSCert and TLSKey make the admin listener serve HTTPS with this
	// certificate and key (PEM). Both or neither; empty: plain HTTP.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// AuthReads requires a read (or write) credential for the read
	// endpoints too: /metrics, /blocklist, /blocklist/rules, /explain and
	// /debug/pprof/. /healthz and /readyz stay open (probes cannot
	// authenticate). Default false. Needs TokensFile or ClientCA.
	AuthReads bool `yaml:"auth_reads"`
	// Hosts are the names, besides its own address, that the admin
	// listener answers to in the Host header: exact names, or "*.suffix"
	// for any name under suffix. Without them it answers only a Host that
	// is an IP address, "localhost", or the host of listen.admin; any
	// other gets 421, so that a web page whose name is rebound to the
	// admin address (DNS rebinding) can neither read nor write. Default
	// none.
	Hosts []string `yaml:"hosts"`
	// CertScopes maps the OU values of a client certificate to the scope
	// they grant, read or write, exactly as written (case matters).
	// Default {write: write, read: read}. A certificate has write scope
	// only if one of its OUs maps to write and none maps to read; any
	// other certificate of admin.client_ca has read scope.
	CertScopes map[string]string `yaml:"cert_scopes"`

	// auth is the credentials read from TokensFile and ClientCA by
	// Check, for the listener.
	auth *Auth
}

// Check checks the section and reads its credentials (Auth), so that a
// bad tokens file or certificate is a config problem. listen is
// listen.admin. Problems and warnings have paths below the admin: block.
func (a *Config) Check(listen string) (problems, warnings problem.List) {
	auth := &Auth{authReads: a.AuthReads}
	if a.TokensFile != "" {
		data, err := os.ReadFile(a.TokensFile)
		if err != nil {
			problems.Addf(problem.Path{"tokens_file"}, "%s", problem.FileError(err))
		} else if auth.tokens, err = parseTokens(a.TokensFile, data); err != nil {
			problems.Addf(problem.Path{"tokens_file"}, "%v", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		} else if len(auth.tokens) == 0 {
			problems.Addf(problem.Path{"tokens_file"}, "%s holds no token", a.TokensFile)
		}
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		problems.Addf(problem.Path{"tls_cert"}, "tls_cert and tls_key go together")
	} else if a.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey)
		if err != nil {
			problems.Addf(problem.Path{"tls_cert"}, "%v", err)
		} else {
			auth.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
	}
	if a.ClientCA != "" {
		pemData, err := os.ReadFile(a.ClientCA)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			problems.Addf(problem.Path{"client_ca"}, "%s", problem.FileError(err))
		case !pool.AppendCertsFromPEM(pemData):
			problems.Addf(problem.Path{"client_ca"}, "%s holds no PEM certificate", a.ClientCA)
		case a.TLSCert == "":
			problems.Addf(problem.Path{"client_ca"}, "client certificates need TLS on the admin listener: set admin.tls_cert and admin.tls_key")
		case auth.tls != nil:
			// Asked for, not required: probes and scrapers reach the
			// open endpoints without one; the /v1 API requires a
			// credential per request.
			auth.tls.ClientAuth = tls.VerifyClientCertIfGiven
			auth.tls.ClientCAs = pool
			auth.certs = true
		}
	}
	if len(a.CertScopes) > 0 {
		if a.ClientCA == "" {
			problems.Addf(problem.Path{"cert_scopes"}, "needs admin.client_ca: no client certificate could authenticate")
		}
		auth.certScopes = map[string]string{}
		for ou, scope := range a.CertScopes {
			if scope != ScopeRead && scope != ScopeWrite {
				problems.Addf(problem.Path{"cert_scopes", ou}, "%q: want read or write", scope)
			}
			auth.certScopes[ou] = scope
		}
	}
	auth.hosts = map[string]bool{}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" {
		if n, err := blocklist.Normalize(h); err == nil {
			auth.hosts[n] = true
		}
	}
	for i, h := range a.Hosts {
		pat, err := blocklist.NormalizePattern(h)
		if err != nil {
			problems.Addf(problem.Path{"hosts", i}, "%v", err)
			continue
		}
		if suf, ok := strings.CutPrefix(pat, "*."); ok {
			auth.suffixes = append(auth.suffixes, "."+suf)
		} else {
			auth.hosts[pat] = true
		}
	}
	if a.AuthReads && a.TokensFile == "" && a.ClientCA == "" {
		problems.Addf(problem.Path{"auth_reads"}, "needs admin.tokens_file or admin.client_ca: nothing could read")
	}
	if a.TokensFile != "" && a.TLSCert == "" && !loopbackAddr(listen) {
		warnings.Addf(problem.Path{"tokens_file"},
			"bearer tokens go over plain HTTP to %s: set admin.tls_cert and admin.tls_key, or keep the admin listener on a network only operators reach", listen)
	}
	a.auth = auth
	return problems, warnings
}

// Auth returns the credentials Check read; nil before Check.
func (a *Config) Auth() *Auth { return a.auth }

// loopbackAddr reports whether host:port names a loopback address.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TLSConfig returns the admin listener's TLS config, nil for plain HTTP.
func (a *Config) TLSConfig() *tls.Config {
	if a.auth == nil || a.auth.tls == nil {
		return nil
	}
	return a.auth.tls.Clone()
}
