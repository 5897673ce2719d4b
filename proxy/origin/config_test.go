package origin

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/problem"
)

// TestSectionValidate: each section reports its problems with paths below
// its own block, never as a string to parse back.
func TestSectionValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		got  string
		want string
	}{
		{"health ok", join((&Health{Path: "/healthz", Interval: time.Second, Headers: map[string]string{"Host": "x"}}).Validate()), "[]"},
		{"health", join((&Health{Path: "healthz", Interval: -1, ExpectStatus: 99, Fails: -1, Headers: map[string]string{"bad name": "x"}}).Validate()),
			"[interval and timeout must not be negative|fails and passes must not be negative|expect_status: 99 is not an HTTP status|path: \"healthz\": want a path such as /healthz|headers: \"bad name\" is not a header name]"},
		{"passive", join((&Passive{MaxFails: -1, Window: -1, UnhealthyStatuses: []int{502, 600}}).Validate()),
			"[window and fail_timeout must not be negative|unhealthy_statuses[1]: 600 is not an HTTP status]"},
		{"retry", join((&Retry{BodyLimit: -1}).Validate()), "[max_tries, try_duration and body_limit must not be negative]"},
	} {
		if s := tt.got; s != tt.want {
			t.Errorf("%s: %s\nwant %s", tt.name, s, tt.want)
		}
	}
}

// join writes l as [p1|p2|...].
func join(l problem.List) string {
	s := "["
	for i, p := range l {
		if i > 0 {
			s += "|"
		}
		s += p.String()
	}
	return s + "]"
}

// TestSectionDefaults: a zero section means the named defaults; a set
// field is kept.
func TestSectionDefaults(t *testing.T) {
	c := Config{Health: Health{Interval: 2 * time.Second, Passes: 5}, Retry: Retry{MaxTries: 1}}.withDefaults()
	want := Config{Policy: RoundRobin, Cookie: DefaultCookie, AllDown: AllDownLeastBad,
		Passive: Passive{MaxFails: DefaultMaxFails, Window: DefaultWindow, FailTimeout: DefaultFailTimeout},
		Health:  Health{Path: DefaultHealthPath, Interval: 2 * time.Second, Timeout: 2 * time.Second, Fails: DefaultHealthFails, Passes: 5},
		Retry:   Retry{MaxTries: 1, TryDuration: DefaultTryDuration, BodyLimit: DefaultBodyLimit}}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("withDefaults:\n%+v\nwant\n%+v", c, want)
	}
	if h := (Health{Interval: time.Minute}).withDefaults(); h.Timeout != DefaultHealthTimeout {
		t.Errorf("timeout with a 1m interval = %v, want %v", h.Timeout, DefaultHealthTimeout)
	}
}

// TestProbeHeaders: a Host entry sets the probe's Host, in any case;
// the others are sent as headers.
func TestProbeHeaders(t *testing.T) {
	h := Health{Headers: map[string]string{"host": "probe.example", "x-check": "1"}}
	req := httptest.NewRequest("GET", "http://origin.example/", nil)
	h.probeHeader(req)
	if req.Host != "probe.example" || req.Header.Get("X-Check") != "1" || req.Header.Get("Host") != "" {
		t.Errorf("Host %q, headers %v", req.Host, req.Header)
	}
}
