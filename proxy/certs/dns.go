package certs

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/rfc2136"
)

// DNS says how to solve ACME DNS-01 challenges: which provider updates the
// zone, and how certmagic checks that the record is visible. Only the
// provider "rfc2136" (dynamic updates signed with TSIG, RFC 2136 and RFC
// 8945: BIND, Knot, PowerDNS and most DNS hosts' secondary setups) exists
// today; Provider names it so that more can be added.
type DNS struct {
	Provider string
	// Server is the primary's host:port that takes the updates.
	Server string
	// KeyName, KeyAlg (such as hmac-sha256) and the file holding the
	// base64 secret of the TSIG key.
	KeyName, KeyAlg, KeySecretFile string
	// Resolvers are the host:port of the DNS servers certmagic asks for
	// the zone (an SOA lookup) and, unless PropagationTimeout is
	// negative, for the record's propagation; empty means the system's.
	Resolvers []string
	// PropagationTimeout bounds the wait for the record to be visible on
	// the zone's authoritative servers; negative skips the check.
	PropagationTimeout time.Duration
}

// TSIGAlgorithms are the key_alg values accepted.
var TSIGAlgorithms = []string{"hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"}

// Solver returns certmagic's DNS-01 solver for d. It reads the key secret
// file now, so a bad file is reported at start or reload.
func (d DNS) Solver() (*certmagic.DNS01Solver, error) {
	if d.Provider != "rfc2136" {
		return nil, fmt.Errorf("dns provider %q: want rfc2136", d.Provider)
	}
	raw, err := os.ReadFile(d.KeySecretFile)
	if err != nil {
		return nil, fmt.Errorf("dns key_secret_file: %w", err)
	}
	secret := strings.TrimSpace(string(raw))
	if _, err := base64.StdEncoding.DecodeString(secret); err != nil || secret == "" {
		return nil, fmt.Errorf("dns key_secret_file %s: want the base64 TSIG secret alone", d.KeySecretFile)
	}
	timeout := d.PropagationTimeout
	if timeout < 0 {
		timeout = -1 // certmagic's value for "no check"
	}
	p := &rfc2136.Provider{KeyName: d.KeyName, KeyAlg: d.KeyAlg, Key: secret, Server: d.Server}
	return &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
		DNSProvider:        p,
		Resolvers:          d.Resolvers,
		PropagationTimeout: timeout,
		TTL:                60 * time.Second,
	}}, nil
}
