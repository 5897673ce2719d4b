// Command bare is the comparison rig's ceiling: the fewest lines of Go
// that do the work edgeblock does on the rig, with net/http and nothing
// else. It answers one host with a fixed page (the bytes and headers that
// edgeblock's block page had, read from files) and forwards every other
// host to one origin with httputil.ReverseProxy; no logging, no metrics,
// no checks. TLS and HTTP/2 are set up as edgeblock's public listeners
// are: an ECDSA P-256 certificate (self-signed here, for the names given),
// TLS 1.2 and later with edgeblock's cipher suites, HTTP/2 and HTTP/1.1
// over TLS, HTTP/1.1 only in clear, HTTP/2 frames of at most 16 KiB.
//
//	go run ./deploy/bench/bare -http 127.0.0.1:18280 -https 127.0.0.1:18643 \
//	    -origin http://127.0.0.1:18081 -blocked vm -page page.html -headers page.hdr
//
// -headers holds "Name: value" lines (curl -D's output; the status line,
// Date and Content-Length are skipped: net/http writes its own).
package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:18280", "plain HTTP/1.1 listen `address`")
	httpsAddr := flag.String("https", "127.0.0.1:18643", "TLS (HTTP/2 and HTTP/1.1) listen `address`")
	originURL := flag.String("origin", "http://127.0.0.1:18081", "origin `URL` for every host but the blocked one")
	blocked := flag.String("blocked", "", "the blocked `host`")
	pageFile := flag.String("page", "", "`file` with the page's body")
	headerFile := flag.String("headers", "", "`file` with the page's header lines")
	status := flag.Int("status", http.StatusForbidden, "the page's `status`")
	names := flag.String("names", "localhost", "comma-separated `names` in the certificate besides -blocked")
	flag.Parse()

	body, err := os.ReadFile(*pageFile)
	if err != nil {
		log.Fatal(err)
	}
	header := http.Header{}
	if *headerFile != "" {
		raw, err := os.ReadFile(*headerFile)
		if err != nil {
			log.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
			switch k = http.CanonicalHeaderKey(strings.TrimSpace(k)); {
			case !ok, k == "Date", k == "Content-Length":
				continue
			}
			header.Add(k, strings.TrimSpace(v))
		}
	}
	header.Set("Content-Length", strconv.Itoa(len(body)))
	origin, err := url.Parse(*originURL)
	if err != nil {
		log.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(origin)
	// Keep-alive to the origin as the other two sides have (nginx: keepalive 128).
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 128}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if host == *blocked {
			h := w.Header()
			for k, v := range header {
				h[k] = v
			}
			w.WriteHeader(*status)
			w.Write(body)
			return
		}
		rp.ServeHTTP(w, r)
	})

	cert := selfSigned(append([]string{*blocked}, strings.Split(*names, ",")...))
	tlsConfig := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
	plain := &http.Server{Addr: *httpAddr, Handler: h, Protocols: new(http.Protocols)}
	plain.Protocols.SetHTTP1(true)
	secure := &http.Server{Addr: *httpsAddr, Handler: h, TLSConfig: tlsConfig, Protocols: new(http.Protocols),
		HTTP2: &http.HTTP2Config{MaxReadFrameSize: 16 << 10}}
	secure.Protocols.SetHTTP1(true)
	secure.Protocols.SetHTTP2(true)
	go func() { log.Fatal(plain.ListenAndServe()) }()
	log.Fatal(secure.ListenAndServeTLS("", ""))
}

// selfSigned returns an ECDSA P-256 certificate for names, valid for a day.
func selfSigned(names []string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
