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
// brackets. An IPv4-mapped IPv6 address is the IPv4 address it maps. A
// name whose last label is a number ("3221225991", "0xc0.0.2.7",
// "0300.0.2.7") is an IPv4 address, as browsers (the WHATWG URL standard)
// and inet_aton read it, and normalizes to its dotted-quad form, or is
// rejected if it is not a valid one: no spelling of an address gets past a
// rule for it. The same function is used for the blocklist file, the routes and
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
	// After IDNA, which maps full-width digits and dots to ASCII ones.
	if endsInNumber(h) {
		ip, ok := parseIPv4Numbers(h)
		if !ok {
			return "", fmt.Errorf("invalid host name %q: ends in a number but is not a valid IPv4 address", host)
		}
		return ip, nil
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
	s := a.WithZone("").Unmap().String()
	if s == h {
		return h, true
	}
	return s, true
}

// endsInNumber reports whether the last label of h (which has no trailing
// dot) is a number as the WHATWG URL standard's IPv4 parser reads one:
// all decimal digits, or "0x" or "0X" followed by hex digits (none
// included). Such a name is an IPv4 address or no valid host at all.
func endsInNumber(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		for i := 2; i < len(last); i++ {
			if !isHexDigit(last[i]) {
				return false
			}
		}
		return true
	}
	return allDigits(last)
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// parseIPv4Numbers parses h as the WHATWG URL standard's IPv4 parser
// does (the forms inet_aton accepts): one to four dot-separated numbers,
// each decimal, hex after "0x", or octal after a leading "0"; every number
// but the last is one byte, the last fills the remaining bytes. It returns
// the dotted-quad form.
func parseIPv4Numbers(h string) (string, bool) {
	var nums [4]uint64
	n := 0
	for part := range strings.SplitSeq(h, ".") {
		if n == len(nums) {
			return "", false
		}
		v, ok := parseIPv4Number(part)
		if !ok {
			return "", false
		}
		nums[n] = v
		n++
	}
	for _, v := range nums[:n-1] {
		if v > 255 {
			return "", false
		}
	}
	if nums[n-1] >= 1<<(8*(5-n)) {
		return "", false
	}
	addr := nums[n-1]
	for i, v := range nums[:n-1] {
		addr += v << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)}).String(), true
}

// parseIPv4Number parses one number of an IPv4 address in WHATWG form:
// "0x" or "0X" then hex digits (none means 0), "0" then octal digits, or
// decimal digits. Values above 2^32 are refused early.
func parseIPv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d uint64
		switch {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 1<<32 {
			return 0, false
		}
	}
	return v, true
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
