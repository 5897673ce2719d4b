package pages

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestAppendRequestMatchesValues: the request path's appendRequest writes
// the same bytes as appendTo with requestValues (the form the split is
// checked with at load), for every format of a block page and an error
// page, in two languages, with hosts that need escaping and times in
// other zones.
func TestAppendRequestMatchesValues(t *testing.T) {
	r := newRenderer(t, Options{BlockedBy: "https://edge.example.com"})
	block, err := r.Block(Block{Policy: "https://blog.example.com/why", Reason: "Imminent threat"})
	if err != nil {
		t.Fatal(err)
	}
	berlin := time.FixedZone("CET", 3600)
	reqs := []Request{
		{Host: "forum.example", RequestID: "0123456789abcdef", Time: time.Date(2026, 12, 7, 5, 30, 0, 0, time.UTC)},
		{Host: `<script>x"`, RequestID: "id with space", Time: time.Date(2026, 1, 2, 3, 4, 5, 999, berlin)},
		{Host: "", RequestID: "", Time: time.Time{}},
		{Host: "2001:db8::1", RequestID: "x", Time: time.Date(1999, 12, 31, 23, 59, 59, 0, berlin)},
	}
	n := 0
	for _, p := range []*Page{block, r.Error(http.StatusNotFound)} {
		for lang := range r.langs {
			v := p.variant(lang)
			for f := range Format(numFormats) {
				c := &v.formats[f]
				if c.dynamic {
					continue
				}
				for _, req := range reqs {
					got, want := c.appendRequest(nil, req), c.appendTo(nil, requestValues(req))
					if !bytes.Equal(got, want) {
						t.Errorf("lang %d format %d %+v:\nappendRequest %q\nappendTo      %q", lang, f, req, got, want)
					}
					n++
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no compiled format compared")
	}
}

// TestContentLengthCache: the cached Content-Length follows the body's
// length when it changes from one request to the next, per format.
func TestContentLengthCache(t *testing.T) {
	r := newRenderer(t, Options{BlockedBy: "https://edge.example.com"})
	p, err := r.Block(Block{Policy: "https://blog.example.com/why", Reason: "Imminent threat"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 5, 30, 0, 0, time.UTC)
	for i, tt := range []struct{ host, accept string }{
		{"a.example", ""}, {"a.example", ""}, {"much-longer-name.example", ""}, {"a.example", "application/json"},
		{"a.example", ""}, {"much-longer-name.example", "application/json"}, {"b.example", "text/plain"}, {"a.example", ""},
	} {
		hr := httptest.NewRequest("GET", "/", nil)
		if tt.accept != "" {
			hr.Header.Set("Accept", tt.accept)
		}
		w := httptest.NewRecorder()
		p.Serve(w, hr, Request{Host: tt.host, RequestID: "0123456789abcdef", Time: now})
		if got, want := w.Header().Get("Content-Length"), strconv.Itoa(w.Body.Len()); got != want {
			t.Errorf("request %d (%s, %q): Content-Length %s, body %s bytes", i, tt.host, tt.accept, got, want)
		}
	}
}

// TestAppendTimeMatchesFormat: appendTime, which formats a second once
// and reuses the text, writes what t.UTC().Format(time.RFC3339) does:
// within one second (its text reused), across second and day boundaries,
// the same instant in other zones, instants before and after the one
// formatted last, years of more or fewer than four digits; and from many
// goroutines at once, each with its own times.
func TestAppendTimeMatchesFormat(t *testing.T) {
	base := time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC)
	berlin, west := time.FixedZone("CET", 3600), time.FixedZone("", -9*3600-30*60)
	for i, tm := range []time.Time{
		base, base.Add(1), base.Add(999999999), base.Add(time.Second), base.Add(2 * time.Second), // into the next year
		base.In(berlin), base.Add(time.Second).In(west), base.Add(-time.Second), base,
		base.Add(-500 * time.Millisecond), // the second before, by less than a second
		{}, time.Unix(0, 0), time.Unix(-1, 0), time.Unix(0, -1),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).In(berlin),
		time.Now(), time.Now().In(berlin),
	} {
		got := string(appendTime([]byte("x"), tm))
		if want := "x" + tm.UTC().Format(time.RFC3339); got != want {
			t.Errorf("%d: appendTime(%v) = %q, want %q", i, tm, got, want)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tm := base.Add(time.Duration(g) * 1500 * time.Millisecond)
			for i := range 2000 {
				tm = tm.Add(time.Duration(i%3) * 333 * time.Millisecond)
				got, want := appendTime(nil, tm), tm.UTC().Format(time.RFC3339)
				if string(got) != want {
					errs <- fmt.Sprintf("goroutine %d: appendTime(%v) = %q, want %q", g, tm, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestHeaderValueMatchesGet: headerValue answers what http.Header.Get
// does for the canonical keys Serve asks for, whether the header is
// missing, empty, repeated or set under a non-canonical spelling.
func TestHeaderValueMatchesGet(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
	}{
		{"missing", http.Header{}},
		{"nil", nil},
		{"one", http.Header{"Accept": {"text/html"}, "Accept-Language": {"de"}}},
		{"repeated", http.Header{"Accept": {"application/json", "text/html"}, "Accept-Language": {"fr", "de"}}},
		{"empty list", http.Header{"Accept": {}, "Accept-Language": nil}},
		{"empty value", http.Header{"Accept": {""}, "Accept-Language": {""}}},
		{"not canonical", http.Header{"accept": {"text/plain"}, "ACCEPT-LANGUAGE": {"ja"}}},
	} {
		for _, k := range []string{"Accept", "Accept-Language"} {
			if got, want := headerValue(tc.h, k), tc.h.Get(k); got != want {
				t.Errorf("%s: headerValue(%s) = %q, Get = %q", tc.name, k, got, want)
			}
		}
	}
}
