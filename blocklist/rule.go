package blocklist

import (
	"fmt"
	"time"
)

// Mode says what a matching rule does.
type Mode uint8

const (
	// ModeBlock serves the block page instead of proxying. It is the zero value.
	ModeBlock Mode = iota
	// ModeReport proxies as usual but logs and counts that the rule would
	// have blocked (a dry run).
	ModeReport
)

// String returns "block" or "report".
func (m Mode) String() string {
	if m == ModeReport {
		return "report"
	}
	return "block"
}

// Attrs are the attributes of a rule that decide what the visitor sees.
// Rules with equal attributes share one Attrs value (and one ID), so that a
// page can be prepared once per Attrs rather than once per rule.
type Attrs struct {
	// Policy is the absolute http(s) URL of the policy post; empty means the
	// operator's default policy.
	Policy string
	// Reason is the text shown to the visitor; empty means none was given.
	// It is taken to be in the operator's default page language.
	Reason string
	// Reasons are the reason in particular languages (reason.de="...");
	// a page in one of them shows that text instead of Reason.
	Reasons Reasons
	// Contact is where visitors reach the operator about this block: an
	// absolute http(s) URL or a mailto: URL. Empty means the operator's
	// default (pages.contact).
	Contact string
	// Appeal is the absolute http(s) URL where visitors appeal this block.
	// Empty means the operator's default (pages.appeal).
	Appeal string
	// Status is the HTTP status of the block page: 403 (the default) or 451.
	Status int
	// Mode is block (the default) or report.
	Mode Mode
	// Scope limits the countries where the rule applies (countries=,
	// except_countries=, unknown=); the zero value is worldwide.
	Scope Scope
	// Publish puts the rule in the transparency feed (publish=yes); the
	// zero value keeps it out.
	Publish bool
	// Notice is the absolute http(s) URL of a public notice about the
	// block, such as a Lumen entry; empty means none.
	Notice string
}

// Rule is one line of the blocklist, as returned by List.Match and List.Rules.
type Rule struct {
	// Name is the normalized name the rule is about.
	Name string
	// Wildcard is true for "*.name": the names under Name but not Name itself.
	// Otherwise the rule covers Name and every name under it.
	Wildcard bool
	// Line is the 1-based line number in the file.
	Line int
	// Expires is the time after which the rule no longer applies; zero means never.
	Expires time.Time
	// AttrsID indexes List.Attrs; rules with equal attributes share it.
	AttrsID int
	Attrs
}

// Pattern returns the rule's pattern as written in normalized form:
// "name" or "*.name".
func (r Rule) Pattern() string {
	if r.Wildcard {
		return "*." + r.Name
	}
	return r.Name
}

// String describes the rule for logs and the explain command.
func (r Rule) String() string {
	s := fmt.Sprintf("%s (line %d, mode=%s, status=%d", r.Pattern(), r.Line, r.Mode, r.Status)
	if !r.Expires.IsZero() {
		s += ", expires=" + r.Expires.UTC().Format(time.RFC3339)
	}
	if !r.Scope.IsZero() {
		s += ", " + r.Scope.String()
	}
	return s + ")"
}

// ActiveAt reports whether the rule applies at time now.
func (r Rule) ActiveAt(now time.Time) bool {
	return r.Expires.IsZero() || now.Before(r.Expires)
}
