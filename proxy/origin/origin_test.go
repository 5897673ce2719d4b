package origin

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func specs(t *testing.T, weights ...int) []Spec {
	t.Helper()
	var s []Spec
	for i, w := range weights {
		u, err := url.Parse(fmt.Sprintf("http://10.0.0.%d:80", i+1))
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, Spec{URL: u, Weight: w})
	}
	return s
}

func TestWeightedOrder(t *testing.T) {
	for _, tt := range []struct {
		weights []int
		want    []int
	}{
		{[]int{1, 1, 1}, []int{0, 1, 2}},
		{[]int{5, 1, 1}, []int{0, 0, 1, 0, 2, 0, 0}}, // nginx's smooth order
		{[]int{1, 2}, []int{1, 0, 1}},
	} {
		if got := weightedOrder(tt.weights); !slices.Equal(got, tt.want) {
			t.Errorf("weightedOrder(%v) = %v, want %v", tt.weights, got, tt.want)
		}
	}
}

// TestHalfOpen: an origin out after failures takes exactly one trial
// request once its fail timeout is over; its success brings it back,
// its failure starts another fail timeout.
func TestHalfOpen(t *testing.T) {
	p := NewPool(Config{Route: "r", Origins: specs(t, 1, 1), Policy: First,
		Passive: Passive{MaxFails: 1, FailTimeout: 50 * time.Millisecond}}, nil, nil, nil)
	a, b := p.Origins()[0], p.Origins()[1]
	pick := func() *Origin {
		t.Helper()
		o, _, err := p.Pick(Request{}, nil)
		if err != nil || o == nil {
			t.Fatalf("Pick: %v, %v", o, err)
		}
		return o
	}
	o := pick()
	p.done(o, resultFailed, "reset")
	if o != a || a.Up() {
		t.Fatalf("a should be out after one failure")
	}
	if o := pick(); o != b {
		t.Fatalf("while a is out: %v", o)
	}
	p.done(b, resultOK, "")
	time.Sleep(60 * time.Millisecond)
	trial := pick()
	if trial != a {
		t.Fatalf("after the fail timeout the trial should go to a, got %v", trial)
	}
	for range 3 { // the trial is under way: nobody else goes to a
		o := pick()
		if o != b {
			t.Fatalf("during a's trial: %v", o)
		}
		p.done(o, resultOK, "")
	}
	p.done(trial, resultFailed, "reset") // failed trial: out again
	if o := pick(); o != b || a.Up() {
		t.Fatalf("after a failed trial: %v, a up %v", o, a.Up())
	}
	p.done(b, resultOK, "")
	time.Sleep(60 * time.Millisecond)
	trial = pick()
	p.done(trial, resultOK, "")
	if trial != a || !a.Up() {
		t.Fatalf("a good trial should bring a back: trial %v, up %v", trial, a.Up())
	}
}

// TestReplayBody: a body is kept as it streams, replayed in full when it
// was read to its end within the limit, and not when it was longer.
func TestReplayBody(t *testing.T) {
	for _, tt := range []struct {
		body       string
		limit      int64
		readFirst  int // bytes the first attempt reads; -1 all
		replayable bool
	}{
		{"hello", 16, -1, true},
		{"hello", 16, 0, true},
		{"hello", 16, 2, false}, // partly sent: the origin may have part of it
		{"hello world", 4, -1, false},
		{"hello world", 4, 0, true},
	} {
		req, _ := http.NewRequest("PUT", "http://x/", strings.NewReader(tt.body))
		b := trackBody(req, tt.limit)
		switch tt.readFirst {
		case -1:
			if got, _ := io.ReadAll(req.Body); string(got) != tt.body {
				t.Fatalf("first read %q", got)
			}
		default:
			io.ReadFull(req.Body, make([]byte, tt.readFirst))
		}
		if b.replayable() != tt.replayable {
			t.Errorf("%+v: replayable %v", tt, b.replayable())
			continue
		}
		if !tt.replayable {
			continue
		}
		r, err := req.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(r); string(got) != tt.body {
			t.Errorf("%+v: replay %q", tt, got)
		}
	}
}

// TestCookieValue: the sticky value depends on key, route and origin, and
// holds no part of the address.
func TestCookieValue(t *testing.T) {
	a := cookieValue([]byte("k1"), "r", "http://10.0.0.1:8080")
	for _, other := range []string{
		cookieValue([]byte("k2"), "r", "http://10.0.0.1:8080"),
		cookieValue([]byte("k1"), "r2", "http://10.0.0.1:8080"),
		cookieValue([]byte("k1"), "r", "http://10.0.0.2:8080"),
	} {
		if other == a {
			t.Errorf("cookie values collide: %q", a)
		}
	}
	if a != cookieValue([]byte("k1"), "r", "http://10.0.0.1:8080") || strings.Contains(a, "10.0.0.1") || strings.Contains(a, "8080") {
		t.Errorf("cookie value %q", a)
	}
}

// TestPickAllDown: a first attempt with every origin out goes to the
// least-bad one (or ErrAllDown with all_down 503), and so does a retry of
// a request that reached no origin yet; a retry of one that reached an
// origin never goes to an origin that is out.
func TestPickAllDown(t *testing.T) {
	for _, allDown := range []string{AllDownLeastBad, AllDown503} {
		p := NewPool(Config{Route: "r", Origins: specs(t, 1, 1, 1), AllDown: allDown, Passive: Passive{FailTimeout: time.Minute}}, nil, nil, nil)
		a, b, c := p.Origins()[0], p.Origins()[1], p.Origins()[2]
		for _, o := range []*Origin{a, b} {
			o.inflight.Add(1)
			p.done(o, resultFailed, "refused")
		}
		time.Sleep(time.Millisecond)
		c.inflight.Add(1)
		p.done(c, resultFailed, "refused") // c comes back last
		o, _, err := p.Pick(Request{}, nil)
		switch allDown {
		case AllDownLeastBad:
			if o != a || err != nil {
				t.Errorf("least_bad first attempt: %v %v, want the origin whose fail timeout ends first", o, err)
			}
			p.done(o, resultNeutral, "")
		case AllDown503:
			if o != nil || err != ErrAllDown {
				t.Errorf("503 first attempt: %v %v, want ErrAllDown", o, err)
			}
		}
		if o, _, err := p.Pick(Request{Reached: true}, []*Origin{a}); o != nil || (allDown == AllDownLeastBad && err != nil) {
			t.Errorf("%s retry of a request that reached an origin: %v %v, want no origin", allDown, o, err)
		}
		o, _, err = p.Pick(Request{}, []*Origin{a})
		switch allDown {
		case AllDownLeastBad:
			if o != b || err != nil {
				t.Errorf("least_bad retry of a request that reached no origin: %v %v, want the least-bad untried origin", o, err)
			}
			p.done(o, resultNeutral, "")
		case AllDown503:
			if o != nil || err != ErrAllDown {
				t.Errorf("503 retry of a request that reached no origin: %v %v, want ErrAllDown", o, err)
			}
		}
		if o, _, err := p.Pick(Request{}, []*Origin{a, b, c}); o != nil || err != nil {
			t.Errorf("%s with every origin tried: %v %v, want none", allDown, o, err)
		}
	}
}

// FuzzStickyCookie: whatever Cookie header a visitor sends, a cookie pool
// picks an origin of its own, and a cookie chooses an origin only by its
// exact signed value.
func FuzzStickyCookie(f *testing.F) {
	u, _ := url.Parse("http://10.0.0.1:80")
	v := cookieValue([]byte("key"), "r", Label(u))
	f.Add("edgeblock_origin=" + v)
	f.Add("a=1; edgeblock_origin=" + v + "; b=2")
	f.Add("edgeblock_origin=\"" + v + "\"")
	f.Add("edgeblock_origin=" + strings.ToUpper(v))
	f.Add(";;=;edgeblock_origin")
	f.Fuzz(func(t *testing.T, header string) {
		p := NewPool(Config{Route: "r", Origins: specs(t, 1, 1), Policy: Cookie, CookieKey: []byte("key")}, nil, nil, nil)
		o, sticky, err := p.Pick(Request{Header: http.Header{"Cookie": {header}}}, nil)
		if err != nil || o == nil || !slices.Contains(p.Origins(), o) {
			t.Fatalf("Pick(%q) = %v, %v", header, o, err)
		}
		if sticky && !strings.Contains(header, p.cookies[slices.Index(p.Origins(), o)]) {
			t.Fatalf("Cookie %q chose %s without its value", header, o)
		}
	})
}
