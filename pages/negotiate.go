package pages

import (
	"strconv"
	"strings"
)

// Format is a representation of a page.
type Format uint8

const (
	// HTML is text/html, the default.
	HTML Format = iota
	// JSON is application/problem+json (RFC 9457).
	JSON
	// Text is text/plain.
	Text
	numFormats
)

// ContentType returns the Content-Type header value of f.
func (f Format) ContentType() string {
	switch f {
	case JSON:
		return "application/problem+json"
	case Text:
		return "text/plain; charset=utf-8"
	}
	return "text/html; charset=utf-8"
}

// String returns "html", "json" or "text".
func (f Format) String() string {
	return [...]string{"html", "json", "text"}[f]
}

// Negotiate picks the format the Accept header prefers. Without an Accept
// header, or when the client rates formats equally (as "*/*" does), HTML is
// chosen, then JSON, then text. JSON is matched by application/problem+json,
// application/json and application/*+json.
func Negotiate(accept string) Format {
	if accept == "" {
		return HTML
	}
	var best [numFormats]struct {
		q, spec int // quality in thousandths; specificity of the range that set it
	}
	for i := range best {
		best[i].spec = -1
	}
	for accept != "" {
		var part string
		part, accept, _ = strings.Cut(accept, ",")
		mt, params, _ := strings.Cut(part, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		q := parseQ(params)
		for f := range numFormats {
			if s := specificity(f, mt); s > best[f].spec {
				best[f].q, best[f].spec = q, s
			}
		}
	}
	pick, pickQ := HTML, 0
	for f := range numFormats {
		if best[f].spec >= 0 && best[f].q > pickQ {
			pick, pickQ = f, best[f].q
		}
	}
	return pick
}

// specificity returns how specifically media range mt matches format f:
// 2 for the type itself, 1 for a type/* or suffix range, 0 for */*, -1 for
// no match.
func specificity(f Format, mt string) int {
	if mt == "*/*" {
		return 0
	}
	switch f {
	case HTML:
		switch mt {
		case "text/html", "application/xhtml+xml":
			return 2
		case "text/*":
			return 1
		}
	case JSON:
		switch mt {
		case "application/problem+json", "application/json":
			return 2
		case "application/*+json", "application/*":
			return 1
		}
	case Text:
		switch mt {
		case "text/plain":
			return 2
		case "text/*":
			return 1
		}
	}
	return -1
}

// parseQ returns the q parameter in thousandths; 1000 when absent or bad.
func parseQ(params string) int {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 1 {
			return 1000
		}
		return int(f * 1000)
	}
	return 1000
}
