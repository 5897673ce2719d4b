package certs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

var testPatterns = NewPatterns([]Pattern{
	{Name: "app.test", Kind: Exact},
	{Name: "customer.test", Kind: Wildcard},
	{Name: "shop.customer.test", Kind: Exact},
	{Name: "forum.test", Kind: Zone},
	{Name: "deep.forum.test", Kind: Wildcard},
	{Name: "old.test", Kind: Zone, Until: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
	{Name: "both.test", Kind: Zone},
	{Name: "both.test", Kind: Exact},
})

func TestPatternsMatch(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name, want string // want "" for not covered
		kind       Kind
	}{
		{"app.test", "app.test", Exact},
		{"x.app.test", "", 0},
		{"customer.test", "", 0},
		{"a.customer.test", "*.customer.test", Wildcard},
		{"a.b.customer.test", "*.customer.test", Wildcard},
		{"shop.customer.test", "shop.customer.test", Exact},
		{"forum.test", "forum.test", Zone},
		{"x.forum.test", "forum.test", Zone},
		{"deep.forum.test", "forum.test", Zone},
		{"x.deep.forum.test", "*.deep.forum.test", Wildcard},
		{"old.test", "", 0},
		{"x.old.test", "", 0},
		{"both.test", "both.test", Exact},
		{"test", "", 0},
		{"", "", 0},
	} {
		p, ok := testPatterns.Match(tt.name, now)
		if got := map[bool]string{true: p.String()}[ok]; got != tt.want || (ok && p.Kind != tt.kind) {
			t.Errorf("Match(%q) = %q kind %d, %v; want %q kind %d", tt.name, p.String(), p.Kind, ok, tt.want, tt.kind)
		}
	}
	var none *Patterns
	if _, ok := none.Match("app.test", now); ok {
		t.Error("nil Patterns covers a name")
	}
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestPolicy(l Limits, has func(context.Context, string) bool) (*Policy, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	p := NewPolicy(l, func() *Patterns { return testPatterns }, has)
	p.now = c.now
	return p, c
}

func reason(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

func TestPolicyBudget(t *testing.T) {
	p, c := newTestPolicy(Limits{MaxNewPerHour: 3, MaxNames: 5}, nil)
	ctx := t.Context()
	decide := func(name, want string) {
		t.Helper()
		if _, err := p.Decide(ctx, name); reason(err) != want {
			t.Fatalf("%s at %s: %q, want %q", name, c.t.Format("15:04"), reason(err), want)
		}
	}
	decide("stranger.test", ReasonNotCovered)
	for i := range 3 {
		decide(fmt.Sprintf("n%d.customer.test", i), "")
	}
	decide("n3.customer.test", ReasonBudget)
	// A known name is not new: it is allowed and not charged.
	decide("n0.customer.test", "")
	// Another pattern has its own budget.
	decide("a.forum.test", "")
	if got := p.Remaining(); got["*.customer.test"] != 0 || got["forum.test"] != 2 {
		t.Errorf("Remaining = %v", got)
	}
	c.t = c.t.Add(59 * time.Minute)
	decide("n3.customer.test", ReasonBudget)
	c.t = c.t.Add(time.Minute)
	decide("n3.customer.test", "")
	decide("n4.customer.test", "")
	// Five names held: MaxNames, whatever the hourly budget says.
	decide("n5.customer.test", ReasonMaxNames)
	if got := p.Remaining()["*.customer.test"]; got != 0 {
		t.Errorf("remaining at max_names = %d", got)
	}
}

func TestPolicySeedAndHas(t *testing.T) {
	stored := map[string]bool{"s9.customer.test": true}
	p, _ := newTestPolicy(Limits{MaxNewPerHour: 10, MaxNames: 3}, func(_ context.Context, n string) bool { return stored[n] })
	p.Seed([]string{"s1.customer.test", "s2.customer.test", "x.forum.test"})
	ctx := t.Context()
	for _, tt := range []struct {
		name, want string
		new        bool
	}{
		{"s1.customer.test", "", false}, // seeded
		{"s9.customer.test", "", false}, // in storage
		{"n1.customer.test", "", true},  // third name
		{"n2.customer.test", ReasonMaxNames, false},
		{"y.forum.test", "", true},
	} {
		d, err := p.Decide(ctx, tt.name)
		if reason(err) != tt.want || d.New != tt.new {
			t.Errorf("%s: %q new=%v, want %q new=%v", tt.name, reason(err), d.New, tt.want, tt.new)
		}
	}
}

func TestPolicyAsk(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		switch r.URL.Query().Get("domain") {
		case "ok.customer.test", "app.test":
			w.WriteHeader(200)
		case "slow.customer.test":
			<-r.Context().Done()
		case "redirect.customer.test":
			http.Redirect(w, r, "/?domain=ok.customer.test", http.StatusFound)
		default:
			w.WriteHeader(403)
		}
	}))
	defer srv.Close()
	p, _ := newTestPolicy(Limits{MaxNewPerHour: 2, MaxNames: 10, Ask: srv.URL + "/ask?token=x", AskTimeout: 300 * time.Millisecond}, nil)
	ctx := t.Context()
	for _, tt := range []struct{ name, want string }{
		{"ok.customer.test", ""},
		{"no.customer.test", ReasonAskDenied},
		{"slow.customer.test", ReasonAskError},
		{"redirect.customer.test", ReasonAskDenied},
		{"ok.customer.test", ""}, // asked again, still one name charged
		{"stranger.test", ReasonNotCovered},
		{"app.test", ""},
	} {
		if _, err := p.Decide(ctx, tt.name); reason(err) != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, reason(err), tt.want)
		}
	}
	if n := asked.Load(); n != 6 {
		t.Errorf("ask endpoint asked %d times, want 6 (never for an uncovered name)", n)
	}
	// Refusals by the ask endpoint gave their budget back: one more new
	// name fits in the hour (ok.customer.test took one of two).
	if got := p.Remaining()["*.customer.test"]; got != 1 {
		t.Errorf("remaining = %d, want 1", got)
	}
	srv.Close()
	if _, err := p.Decide(ctx, "ok.customer.test"); reason(err) != ReasonAskError {
		t.Errorf("ask endpoint down: %q", reason(err))
	}
}

func TestLabelSet(t *testing.T) {
	s := &LabelSet{Max: 2}
	for _, tt := range []struct{ in, want string }{{"a", "a"}, {"b", "b"}, {"c", OtherLabel}, {"a", "a"}, {"d", OtherLabel}} {
		if got := s.Label(tt.in); got != tt.want {
			t.Errorf("Label(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPolicyWildcardCert: names one label under a pattern served by a
// wildcard certificate wait for it and are never charged; deeper names
// take the budget as usual.
func TestPolicyWildcardCert(t *testing.T) {
	set := NewPatterns([]Pattern{{Name: "wild.test", Kind: Wildcard, WildcardCert: true}})
	stored := false
	p := NewPolicy(Limits{MaxNewPerHour: 1, MaxNames: 10}, func() *Patterns { return set },
		func(_ context.Context, n string) bool { return stored && n != "b.a.wild.test" })
	ctx := t.Context()
	for _, tt := range []struct {
		name, want string
		stored     bool
		new        bool
	}{
		{"a.wild.test", ReasonWildcardPending, false, false},
		{"a.wild.test", "", true, false},
		{"b.wild.test", "", true, false},
		{"b.a.wild.test", "", true, true},
		{"c.a.wild.test", "", true, false}, // stored (has says so)
		{"wild.test", ReasonNotCovered, true, false},
	} {
		stored = tt.stored
		d, err := p.Decide(ctx, tt.name)
		if reason(err) != tt.want || d.New != tt.new {
			t.Errorf("%s: %q new=%v, want %q new=%v", tt.name, reason(err), d.New, tt.want, tt.new)
		}
	}
}
