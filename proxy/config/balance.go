package config

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/edgeblock/edgeblock/proxy/origin"
	"github.com/edgeblock/edgeblock/proxy/problem"
)

// validate checks a route's (or the origins: section's) balancing
// settings; at is the path of the block that holds them.
func (b *BalanceConfig) validate(c *Config, v *validator, at []any) {
	f := func(keys ...any) []any { return append(slices.Clip(at), keys...) }
	if b.LB != "" && !slices.Contains(origin.Policies, b.LB) {
		v.addf(f("lb"), "%q: want one of %s", b.LB, strings.Join(origin.Policies, ", "))
	}
	if b.AllDown != "" && b.AllDown != origin.AllDownLeastBad && b.AllDown != origin.AllDown503 {
		v.addf(f("all_down"), "%q: want least_bad or 503", b.AllDown)
	}
	if b.Cookie != "" && !IsToken(b.Cookie) {
		v.addf(f("cookie"), "%q is not a cookie name (an HTTP token)", b.Cookie)
	}
	if h := b.Health; h != nil {
		v.addProblems(f("health"), h.Validate())
	}
	if p := b.Passive; p != nil {
		v.addProblems(f("passive"), p.Validate())
	}
	if b.Headers != nil {
		b.Headers.validate(v, f("headers"))
	}
	if b.MaxIdleConns < 0 {
		v.addf(f("max_idle_conns"), "must not be negative")
	}
	if t := b.Timeouts; t != nil && (t.Dial < 0 || t.ResponseHeader < 0) {
		v.addf(f("timeouts"), "dial and response_header must not be negative")
	}
	if t := b.OriginTLS; t != nil {
		// Routes often repeat one block: its files are read once.
		err, seen := v.originTLS[*t]
		if !seen {
			_, _, err = OriginTLS(t)
			if v.originTLS == nil {
				v.originTLS = map[OriginTLSConfig]error{}
			}
			v.originTLS[*t] = err
		}
		if err != nil {
			v.addf(f("origin_tls"), "%v", err)
		}
		if t.InsecureSkipVerify {
			c.Warnings = append(c.Warnings, v.format(f("origin_tls", "insecure_skip_verify"), "true: origin certificates are not verified, so anyone on the path to the origin can read and change the traffic"))
		}
	}
	if r := b.Retries; r != nil {
		v.addProblems(f("retries"), r.Validate())
	}
}

// merged returns the route's balancing settings with the blocks it leaves
// out taken from def.
func (b BalanceConfig) Merged(def BalanceConfig) BalanceConfig {
	if b.LB == "" {
		b.LB = def.LB
	}
	if b.Cookie == "" {
		b.Cookie = def.Cookie
	}
	if b.AllDown == "" {
		b.AllDown = def.AllDown
	}
	if b.Health == nil {
		b.Health = def.Health
	}
	if b.Passive == nil {
		b.Passive = def.Passive
	}
	if b.Retries == nil {
		b.Retries = def.Retries
	}
	if b.OriginTLS == nil {
		b.OriginTLS = def.OriginTLS
	}
	if b.HTTP2 == nil {
		b.HTTP2 = def.HTTP2
	}
	if b.MaxIdleConns == 0 {
		b.MaxIdleConns = def.MaxIdleConns
	}
	if b.Timeouts == nil {
		b.Timeouts = def.Timeouts
	}
	if b.Headers == nil {
		b.Headers = def.Headers
	}
	return b
}

// originTLS returns the client TLS config of t, reading its files, and a
// digest of their content.
func OriginTLS(t *OriginTLSConfig) (*tls.Config, string, error) {
	tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	h := sha256.New()
	for _, f := range []string{t.CAFile, t.ClientCert, t.ClientKey} {
		if f != "" {
			b, _ := os.ReadFile(f) // errors are reported below
			h.Write(b)
		}
	}
	digest := fmt.Sprintf("%x", h.Sum(nil))
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, "", fmt.Errorf("ca_file: %s", problem.FileError(err))
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("ca_file: %s: no PEM certificate in it", t.CAFile)
		}
	}
	if (t.ClientCert == "") != (t.ClientKey == "") {
		return nil, "", errors.New("client_cert and client_key go together")
	}
	if t.ClientCert != "" {
		pair, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			return nil, "", fmt.Errorf("client_cert, client_key: %v", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, digest, nil
}
