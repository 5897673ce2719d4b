package blocklist

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// Limits from RFC 1035 on the presentation form of a name.
const (
	maxNameLen  = 253
	maxLabelLen = 63
)

// Normalize returns the canonical form of a host name as it is matched
// against the blocklist and the routes: lower case, any port removed, one
// trailing dot removed, internationalized labels converted to punycode
// (IDNA lookup profile), IP literals in their canonical text form without
// brackets. The same function is used for the blocklist file, the routes and
// every request, so that they always agree.
//
// For a name that is already canonical (the common case on the request
// path) Normalize does not allocate.
func Normalize(host string) (string, error) {
	if host == "" {
		return "", errors.New("empty host name")
	}
	h, err := stripPort(host)
	if err != nil {
		return "", err
	}
	if ip, ok := parseIP(h); ok {
		return ip, nil
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return "", fmt.Errorf("invalid host name %q: empty", host)
	}
	if isASCIIName(h) {
		h = lowerASCII(h)
	} else {
		if err := badASCII(h); err != nil {
			return "", fmt.Errorf("invalid host name %q: %v", host, err)
		}
		a, err := idna.Lookup.ToASCII(h)
		if err != nil {
			return "", fmt.Errorf("invalid host name %q: %v", host, err)
		}
		h = a
	}
	if err := checkLabels(h); err != nil {
		return "", fmt.Errorf("invalid host name %q: %v", host, err)
	}
	return h, nil
}

// stripPort removes a ":port" suffix and the brackets of an IPv6 literal.
func stripPort(host string) (string, error) {
	if host[0] == '[' {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", fmt.Errorf("invalid host name %q: missing ']'", host)
		}
		rest := host[end+1:]
		if rest != "" && (rest[0] != ':' || !allDigits(rest[1:])) {
			return "", fmt.Errorf("invalid host name %q: bad port", host)
		}
		return host[1:end], nil
	}
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return host, nil
	}
	if strings.IndexByte(host, ':') != i {
		return host, nil // several colons: a bare IPv6 literal
	}
	if !allDigits(host[i+1:]) {
		return "", fmt.Errorf("invalid host name %q: bad port", host)
	}
	return host[:i], nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseIP reports whether h is an IP literal and returns its canonical form.
// Only strings that can be IPs are handed to netip, to keep names cheap.
func parseIP(h string) (string, bool) {
	if h == "" {
		return "", false
	}
	last := h[len(h)-1]
	if strings.IndexByte(h, ':') < 0 && (last < '0' || last > '9') {
		return "", false
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return "", false
	}
	s := a.WithZone("").String()
	if s == h {
		return h, true
	}
	return s, true
}

// isASCIIName reports whether s holds only the bytes a canonical name may
// hold, in either case.
func isASCIIName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		case 'A' <= c && c <= 'Z':
		default:
			return false
		}
	}
	return true
}

// badASCII describes the first ASCII byte of h that no host name may hold
// (a name that is not all name characters, on the slow path only), so that
// "bad host.example" is reported as a name with a space rather than in
// IDNA's terms. Non-ASCII bytes are left to IDNA.
func badASCII(h string) error {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 0x80, 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		case c == ' ':
			return errors.New("a name with a space")
		case c == '\t':
			return errors.New("a name with a tab")
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("a name with control character %q", c)
		default:
			return fmt.Errorf("a name with character %q, which host names cannot hold", c)
		}
	}
	return nil
}

// lowerASCII lowercases s, allocating only when s has an upper-case letter.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// checkLabels validates the lengths and characters of every label (letters,
// digits, '-' and '_', no '-' at either end, RFC 952 and 1123), and the
// punycode of every "xn--" label.
func checkLabels(h string) error {
	if len(h) > maxNameLen {
		return fmt.Errorf("longer than %d bytes", maxNameLen)
	}
	for label := range strings.SplitSeq(h, ".") {
		switch {
		case label == "":
			return errors.New("empty label")
		case len(label) > maxLabelLen:
			return fmt.Errorf("label %q longer than %d bytes", label, maxLabelLen)
		case label[0] == '-':
			return fmt.Errorf("label %q starts with '-'", label)
		case label[len(label)-1] == '-':
			return fmt.Errorf("label %q ends with '-'", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("label %q has character %q", label, c)
			}
		}
		if strings.HasPrefix(label, "xn--") {
			if _, err := idna.Lookup.ToASCII(label); err != nil {
				return fmt.Errorf("label %q is not valid punycode", label)
			}
		}
	}
	return nil
}
