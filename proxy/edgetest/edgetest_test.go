package edgetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fatalTB records a Fatalf and ends the goroutine of the call, as
// testing.T does, so that a helper's failure can be tested.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Helper()                           {}
func (f *fatalTB) Fatal(args ...any)                 { f.fail(fmt.Sprint(args...)) }
func (f *fatalTB) Fatalf(format string, args ...any) { f.fail(fmt.Sprintf(format, args...)) }

func (f *fatalTB) fail(msg string) {
	f.mu.Lock()
	f.msg = msg
	f.mu.Unlock()
	runtime.Goexit()
}

// failure runs fn with a fatalTB and returns its Fatalf message ("" if
// fn returned without one).
func failure(t *testing.T, fn func(tb testing.TB)) string {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); fn(f) }()
	<-done
	return f.msg
}

func TestLogBuffer(t *testing.T) {
	var b LogBuffer
	flushed := 0
	b.Flush = func() { flushed++; b.Write([]byte(`{"msg":"late","n":3}` + "\n")) }
	b.Write([]byte(`{"msg":"a","n":1}` + "\n" + `{"msg":"b"}` + "\n"))
	b.Write([]byte(`{"msg":"a","n":2}` + "\n"))
	lines := b.Lines(t, "a")
	if len(lines) != 2 || lines[0]["n"] != 1.0 || lines[1]["n"] != 2.0 {
		t.Errorf("Lines(a) = %v, want n 1 and 2 in order", lines)
	}
	if flushed != 1 || len(b.Lines(t, "late")) != 2 {
		t.Errorf("Flush called %d times before the reads, want once per read", flushed)
	}
	b.Flush = nil
	if got := b.Lines(t, "none"); len(got) != 0 {
		t.Errorf("Lines(none) = %v", got)
	}
	b.Write([]byte("not json\n"))
	if msg := failure(t, func(tb testing.TB) { b.Lines(tb, "a") }); !strings.Contains(msg, `not JSON: "not json"`) {
		t.Errorf("a line that is not JSON: %q, want a failure naming it", msg)
	}

	var k LogBuffer
	k.KeepAtMost(10)
	k.Write([]byte("12345678"))
	if n, err := k.Write([]byte("abc")); n != 3 || err != nil {
		t.Errorf("Write past the bound = %d, %v; want 3, nil", n, err)
	}
	k.Write([]byte("9"))
	if k.String() != "123456789" || k.Dropped() != 3 {
		t.Errorf("kept %q, dropped %d; want 123456789 and 3", k.String(), k.Dropped())
	}
}

func TestWaitFor(t *testing.T) {
	start := time.Now()
	n := 0
	took := WaitFor(t, 5*time.Second, "three polls", func() bool { n++; return n == 3 })
	if n != 3 || took <= 0 || took > time.Since(start) {
		t.Errorf("WaitFor: %d polls, took %v", n, took)
	}
	msg := failure(t, func(tb testing.TB) { WaitFor(tb, 50*time.Millisecond, "never", func() bool { return false }) })
	if msg != "timed out after 50ms waiting for never" {
		t.Errorf("WaitFor on a condition that never holds: %q", msg)
	}
}

func TestMetricValue(t *testing.T) {
	scrape := `# HELP x_total X.
# TYPE x_total counter
x_total{route="a.example"} 3
x_total{route="a.example",kind="b"} 4
x_total_other 5
y 1.5e+06
`
	for _, tt := range []struct{ series, want string }{
		{`x_total{route="a.example"}`, "3"},
		{`x_total{route="a.example",kind="b"}`, "4"},
		{"y", "1.5e+06"},
		{"x_total", ""}, // a name without its labels is not the series
		{`x_total{route="b.example"}`, ""},
		{"x", ""},
	} {
		if got := MetricValue(scrape, tt.series); got != tt.want {
			t.Errorf("MetricValue(%s) = %q, want %q", tt.series, got, tt.want)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(scrape)) }))
	defer srv.Close()
	if got := MetricValue(Scrape(t, srv.URL+"/metrics"), "y"); got != "1.5e+06" {
		t.Errorf("from Scrape: %q", got)
	}
}

func TestFiles(t *testing.T) {
	var dir string
	t.Run("RemovedDir", func(t *testing.T) {
		dir = RemovedDir(t, "edgetest-")
		WriteFile(t, filepath.Join(dir, "a.txt"), "text")
		if b, err := os.ReadFile(filepath.Join(dir, "a.txt")); err != nil || string(b) != "text" {
			t.Fatalf("WriteFile: %q %v", b, err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after the test: %v", dir, err)
	}
	if msg := failure(t, func(tb testing.TB) { WriteFile(tb, filepath.Join(t.TempDir(), "no", "such", "dir"), "x") }); msg == "" {
		t.Error("WriteFile into a missing directory did not fail the test")
	}
}

func TestInternalCAPool(t *testing.T) {
	storage := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edgetest root"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(storage, "internal-ca"), 0o755)
	WriteFile(t, filepath.Join(storage, "internal-ca", "root.crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	root, _ := x509.ParseCertificate(der)
	if _, err := root.Verify(x509.VerifyOptions{Roots: InternalCAPool(t, storage)}); err != nil {
		t.Errorf("the root does not verify against the pool: %v", err)
	}
	if msg := failure(t, func(tb testing.TB) { InternalCAPool(tb, t.TempDir()) }); !strings.Contains(msg, "root.crt") {
		t.Errorf("a storage without a CA: %q, want a failure naming root.crt", msg)
	}
}
