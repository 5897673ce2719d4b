package admin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/edgeblock/edgeblock/blocklist"
)

// Scopes of an admin credential. A write credential may also read.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
)

// token is one bearer token of the tokens file: only the SHA-256 of
// the token is kept in memory, whichever form the file used.
type token struct {
	name  string
	scope string
	hash  [sha256.Size]byte
}

// parseTokens parses a tokens file (file names it in errors). Each line
// that is not blank or a "#" comment is one token, in one of two forms:
//
//	name:scope:sha256hex    the SHA-256 of the token, 64 hex digits (preferred:
//	                        the file then holds no secret)
//	name scope token        the token itself, separated by spaces or tabs
//
// name is the actor recorded for the token's writes (letters, digits and
// ".-_@"), scope is read or write. Names must be unique, and so must tokens.
// A token in the clear must be at least 16 characters long. The error lists
// every bad line as "file:line: message"; the token itself is never quoted.
func parseTokens(file string, data []byte) ([]token, error) {
	var toks []token
	var problems []string
	bad := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
	}
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var t token
		var secret string
		if f := strings.Fields(line); len(f) == 3 {
			t.name, t.scope, secret = f[0], f[1], f[2]
			if len(secret) < 16 {
				bad(n, "token of %s: want at least 16 characters (better: store its sha256 as name:scope:sha256hex)", t.name)
				continue
			}
			t.hash = sha256.Sum256([]byte(secret))
		} else if p := strings.Split(line, ":"); len(p) == 3 && len(f) == 1 {
			t.name, t.scope = p[0], p[1]
			h, err := hex.DecodeString(p[2])
			if err != nil || len(h) != sha256.Size {
				bad(n, "token of %s: want the SHA-256 of the token as 64 hex digits (printf %%s TOKEN | sha256sum)", t.name)
				continue
			}
			copy(t.hash[:], h)
		} else {
			bad(n, "want name:scope:sha256hex or \"name scope token\"")
			continue
		}
		if t.name == "" || strings.ContainsFunc(t.name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_@", r))
		}) || len(t.name) > 64 {
			bad(n, "name %q: want 1 to 64 letters, digits or .-_@", t.name)
			continue
		}
		if t.scope != ScopeRead && t.scope != ScopeWrite {
			bad(n, "scope %q of %s: want read or write", t.scope, t.name)
			continue
		}
		if first, dup := names[t.name]; dup {
			bad(n, "name %s is also on line %d", t.name, first)
			continue
		}
		if first, dup := hashes[t.hash]; dup {
			bad(n, "the token of %s is also the token on line %d", t.name, first)
			continue
		}
		names[t.name], hashes[t.hash] = n, n
		toks = append(toks, t)
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, fmt.Sprintf("%s:%d: %v", file, n+1, err))
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return toks, nil
}

// Auth holds the credentials of the admin API: the tokens of
// admin.tokens_file, the TLS settings of the admin listener and whether a
// client certificate authenticates.
type Auth struct {
	tokens    []token
	certs     bool        // admin.client_ca: verified client certificates authenticate
	tls       *tls.Config // admin.tls_cert: the listener serves TLS with this
	authReads bool
	// certScopes maps a client certificate's OU to the scope it grants
	// (admin.cert_scopes, else defaultCertScopes).
	certScopes map[string]string
	// hosts are the names the listener answers to besides IP addresses
	// and localhost: the host of listen.admin and admin.hosts, normalized;
	// suffixes the ".suffix" of the "*.suffix" entries.
	hosts    map[string]bool
	suffixes []string
}

// defaultCertScopes is admin.cert_scopes when the config has none: the OU
// "write" grants write, "read" read, exactly as written.
var defaultCertScopes = map[string]string{ScopeWrite: ScopeWrite, ScopeRead: ScopeRead}

// certScope returns the scope of a client certificate with the OUs ous:
// write only if one of them maps to write and none to read; else read.
// Fails closed: an OU that is not mapped, or spelled otherwise ("Read",
// "WRITE"), grants nothing beyond read.
func (a *Auth) certScope(ous []string) string {
	m := a.certScopes
	if m == nil {
		m = defaultCertScopes
	}
	write := false
	for _, ou := range ous {
		switch m[ou] {
		case ScopeRead:
			return ScopeRead
		case ScopeWrite:
			write = true
		}
	}
	if write {
		return ScopeWrite
	}
	return ScopeRead
}

// hostAllowed reports whether the admin listener answers a request whose
// Host header is host: an IP address (a browser sends the name of the
// page's origin, so a name rebound to the admin address never arrives as
// an IP), localhost, the host of listen.admin, or a name of admin.hosts.
// An empty Host (HTTP/1.0) is allowed: no browser sends one.
func (a *Auth) hostAllowed(host string) bool {
	if host == "" {
		return true
	}
	h, err := blocklist.Normalize(host)
	if err != nil {
		return false
	}
	if h == "localhost" || net.ParseIP(h) != nil {
		return true
	}
	if a == nil {
		return false
	}
	if a.hosts[h] {
		return true
	}
	for _, suf := range a.suffixes {
		if strings.HasSuffix(h, suf) {
			return true
		}
	}
	return false
}

// on reports whether any credential is configured; without one the /v1 API
// is not served at all.
func (a *Auth) on() bool { return a != nil && (len(a.tokens) > 0 || a.certs) }

// principal is who made an admin request.
type principal struct {
	name  string // the token's name or the certificate's CN
	scope string
	via   string // token or cert
}

// actor is who the audit trail names for p's writes: the credential's
// kind and name, "token:deploy-bot" or "cert:deploy-bot", so that a token
// and a certificate of the same name never stand for each other.
func (p principal) actor() string { return p.via + ":" + p.name }

// may reports whether p's scope allows an operation that needs scope.
func (p principal) may(scope string) bool {
	return p.scope == ScopeWrite || scope == ScopeRead
}

// authError is why a request is not authenticated; status is 401.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

// authenticate returns who sent r: a verified client certificate (when
// admin.client_ca is set) wins, else the bearer token. The token is hashed
// and compared with every configured hash in constant time, all of them,
// so the time taken says nothing about which or how much of one matched.
func (a *Auth) authenticate(r *http.Request) (principal, error) {
	if a.certs && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		leaf := r.TLS.VerifiedChains[0][0]
		scope := a.certScope(leaf.Subject.OrganizationalUnit)
		name := leaf.Subject.CommonName
		if name == "" {
			return principal{}, &authError{"client certificate has no CN, which names the actor"}
		}
		return principal{name: name, scope: scope, via: "cert"}, nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return principal{}, &authError{"no credentials: send Authorization: Bearer TOKEN" + a.certHint()}
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return principal{}, &authError{"Authorization: want Bearer TOKEN"}
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	match := -1
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], a.tokens[i].hash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return principal{}, &authError{"unknown token"}
	}
	t := a.tokens[match]
	return principal{name: t.name, scope: t.scope, via: "token"}, nil
}

func (a *Auth) certHint() string {
	if a.certs {
		return ", or present a client certificate signed by admin.client_ca"
	}
	return ""
}
