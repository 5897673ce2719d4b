package geo_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/geo"
	"github.com/edgeblock/edgeblock/proxy/geo/geotest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var built = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// fixture is the database most tests use: loopback addresses in three
// countries, IPv4 and IPv6.
var fixture = []geotest.Entry{
	{Network: "127.0.0.1/32", Country: "FR"},
	{Network: "127.0.0.2/32", Country: "DE"},
	{Network: "127.0.0.3/32", Registered: "US"},
	{Network: "127.0.0.4/32", Country: "EU"},
	{Network: "198.51.100.0/24", Country: "fr"},
	{Network: "::1/128", Country: "BE"},
	{Network: "2001:db8::/32", Country: "JP"},
}

func TestCountry(t *testing.T) {
	db, err := geo.Parse("fixture.mmdb", geotest.Build(t, built, fixture...))
	if err != nil {
		t.Fatal(err)
	}
	if db.Type != "GeoLite2-Country" || !db.Built.Equal(built) {
		t.Errorf("metadata: type %q built %v", db.Type, db.Built)
	}
	tests := []struct{ addr, want string }{
		{"127.0.0.1", "FR"},
		{"::ffff:127.0.0.1", "FR"}, // an IPv4-mapped address is its IPv4 address
		{"127.0.0.2", "DE"},
		{"127.0.0.3", "US"}, // registered_country when country is missing
		{"127.0.0.4", ""},   // EU is no country
		{"127.0.0.9", ""},   // no entry
		{"198.51.100.77", "FR"},
		{"::1", "BE"},
		{"2001:db8:1::5", "JP"},
		{"2001:db9::1", ""},
	}
	for _, tt := range tests {
		if got := db.Country(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Country(%s) = %q; want %q", tt.addr, got, tt.want)
		}
	}
	var none *geo.DB
	if none.Country(netip.MustParseAddr("127.0.0.1")) != "" || db.Country(netip.Addr{}) != "" {
		t.Error("a nil DB or an invalid address has a country")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	good := geotest.Build(t, built, fixture...)
	files := map[string][]byte{
		"garbage.mmdb":   []byte("not a database"),
		"truncated.mmdb": good[:len(good)/2],
		"empty.mmdb":     nil,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"garbage.mmdb", "truncated.mmdb", "empty.mmdb", "missing.mmdb", "."} {
		_, err := geo.Load(filepath.Join(dir, name))
		if err == nil || !strings.HasPrefix(err.Error(), "geo.database: ") || !strings.Contains(err.Error(), dir) {
			t.Errorf("Load(%s) = %v; want an error naming geo.database and the file", name, err)
		}
	}
}

// TestSourceKeepsLastGood swaps the database file: a good one is loaded, a
// bad or missing one keeps the last good database in use, and the metrics
// say what happened each time.
func TestSourceKeepsLastGood(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := geo.NewMetrics(reg)
	s := geo.NewSource(m)
	path := filepath.Join(t.TempDir(), "country.mmdb")
	fr := netip.MustParseAddr("127.0.0.1")
	loads := func(r string) float64 { return testutil.ToFloat64(m.Loads.WithLabelValues(r)) }

	if _, err := s.Refresh(path, false); err == nil {
		t.Fatal("a missing file loaded")
	}
	if s.Current() != nil || loads(geo.ResultFailure) != 1 || testutil.ToFloat64(m.LastSuccessful) != 0 {
		t.Fatal("missing file: want no database, one failure")
	}

	geotest.Write(t, path, built, fixture...)
	if changed, err := s.Refresh(path, false); err != nil || !changed {
		t.Fatalf("Refresh = %v, %v", changed, err)
	}
	if s.Country(fr) != "FR" || testutil.ToFloat64(m.Built) != float64(built.Unix()) || testutil.ToFloat64(m.LastSuccessful) != 1 {
		t.Fatal("good file not in use")
	}
	if changed, err := s.Refresh(path, false); err != nil || changed || loads(geo.ResultUnchanged) != 1 {
		t.Fatalf("unchanged file: changed %v err %v", changed, err)
	}

	if err := os.WriteFile(path, []byte("broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(path, false); err == nil {
		t.Fatal("a bad file loaded")
	}
	if s.Country(fr) != "FR" || testutil.ToFloat64(m.LastSuccessful) != 0 || loads(geo.ResultFailure) != 2 || s.Err() == nil {
		t.Fatal("bad file: the last good database is not kept")
	}
	os.Remove(path)
	if _, err := s.Refresh(path, false); err == nil || s.Country(fr) != "FR" {
		t.Fatal("missing file: the last good database is not kept")
	}

	later := built.Add(24 * time.Hour)
	geotest.Write(t, path, later, geotest.Entry{Network: "127.0.0.1/32", Country: "IT"})
	if changed, err := s.Refresh(path, false); err != nil || !changed || s.Country(fr) != "IT" || s.Err() != nil {
		t.Fatalf("new file: changed %v err %v country %q", changed, err, s.Country(fr))
	}
	if testutil.ToFloat64(m.Built) != float64(later.Unix()) || loads(geo.ResultSuccess) != 2 {
		t.Error("metrics do not follow the new database")
	}
	if changed, _ := s.Refresh("", false); !changed || s.Current() != nil || testutil.ToFloat64(m.Built) != 0 {
		t.Error("an empty path keeps a database")
	}
}

func TestBlockedCounter(t *testing.T) {
	m := geo.NewMetrics(prometheus.NewRegistry())
	m.Blocked("FR")
	m.Blocked("")
	m.Blocked("ZZ")
	if got := testutil.ToFloat64(m.Blocks.WithLabelValues("FR")); got != 1 {
		t.Errorf("FR = %v", got)
	}
	if got := testutil.ToFloat64(m.Blocks.WithLabelValues("unknown")); got != 2 {
		t.Errorf("unknown = %v", got)
	}
	if n := testutil.CollectAndCount(m.Blocks); n != 251 {
		t.Errorf("%d series, want 251 (250 countries and unknown)", n)
	}
	if a := testing.AllocsPerRun(100, func() { m.Blocked("DE") }); a != 0 {
		t.Errorf("Blocked allocates %v times", a)
	}
}

// BenchmarkCountry is the database lookup a request from a visitor that a
// scoped rule covers pays.
func BenchmarkCountry(b *testing.B) {
	db, err := geo.Parse("fixture.mmdb", geotest.Build(b, built, fixture...))
	if err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("198.51.100.77")
	b.ReportAllocs()
	for b.Loop() {
		if db.Country(a) != "FR" {
			b.Fatal("wrong country")
		}
	}
}
