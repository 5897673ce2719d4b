package hostile

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"time"
)

// Result is what one visitor got.
type Result struct {
	// Outcome is the final status code, "error" when the round trip
	// failed, or the status and " body error" when the body broke off.
	Outcome string
	// Got is every byte the visitor received: the heads of 1xx
	// responses, the final head, the body and the trailers.
	Got []byte
}

// Visit sends one request of b, tagged tag, for host to url through rt.
func Visit(rt http.RoundTripper, url, host string, b Behaviour, tag string) Result {
	var got bytes.Buffer
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got.WriteString(strconv.Itoa(code) + "\n")
		http.Header(h).Write(&got)
		return nil
	}}
	timeout := b.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var body io.Reader
	if b.Body > 0 {
		body = bytes.NewReader(bytes.Repeat([]byte("b"), b.Body))
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), b.Method, url, body)
	if err != nil {
		return Result{Outcome: "error: " + err.Error()}
	}
	req.Host = host
	req.Header.Set("X-Tag", tag)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return Result{Outcome: "error", Got: got.Bytes()}
	}
	defer resp.Body.Close()
	got.WriteString(resp.Status + "\n")
	resp.Header.Write(&got)
	_, err = io.Copy(&got, resp.Body)
	resp.Trailer.Write(&got)
	out := strconv.Itoa(resp.StatusCode)
	if err != nil {
		out += " body error"
	}
	return Result{Outcome: out, Got: got.Bytes()}
}
