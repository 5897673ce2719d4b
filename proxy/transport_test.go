package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestNoCompressionAdded: the edge passes the visitor's Accept-Encoding
// (or its absence) to the origin as it is, and the origin's encoded body
// back untouched: it neither asks for gzip on its own nor decompresses.
func TestNoCompressionAdded(t *testing.T) {
	gz := []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xffnot really gzip, and the edge must not look")
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Got-Accept-Encoding", r.Header.Get("Accept-Encoding"))
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz)
			return
		}
		io.WriteString(w, "plain")
	}))
	defer o.Close()
	e := startEnv(t, "routes:\n  - host: app.example\n    origins: [\""+o.URL+"\"]\n", "")
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	for _, c := range []struct{ accept, wantOrigin, wantEncoding, wantBody string }{
		{"", "", "", "plain"},
		{"gzip", "gzip", "gzip", string(gz)},
		{"br", "br", "", "plain"},
	} {
		req, _ := http.NewRequest("GET", e.url("http")+"/", nil)
		req.Host = "app.example"
		if c.accept != "" {
			req.Header.Set("Accept-Encoding", c.accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Got-Accept-Encoding"); got != c.wantOrigin {
			t.Errorf("visitor Accept-Encoding %q: origin got %q, want %q", c.accept, got, c.wantOrigin)
		}
		if got := resp.Header.Get("Content-Encoding"); got != c.wantEncoding || string(body) != c.wantBody {
			t.Errorf("visitor Accept-Encoding %q: Content-Encoding %q body %q, want %q %q", c.accept, got, body, c.wantEncoding, c.wantBody)
		}
	}
}
