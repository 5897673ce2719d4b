// Package geo tells the edge a visitor's country, for blocklist rules
// scoped to countries: from a MaxMind-format database (geo.database), held
// in memory and swapped whole when the file changes, with metrics of its
// age and of every load.
//
// The package imports nothing else of edgeblock but the blocklist's list
// of country codes.
package geo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// DB is a loaded country database. It is immutable and safe for
// concurrent use; the file it came from may change or go away meanwhile.
type DB struct {
	reader *maxminddb.Reader
	// Path is the file the database was read from, SHA256 its content's
	// hex hash, Type its database_type (GeoLite2-Country, DBIP-Country-Lite, ...).
	Path, SHA256, Type string
	// Built is the database's build time (its build_epoch).
	Built time.Time
	// Size is the file's size in bytes.
	Size int64
}

// maxSize bounds the database file read into memory: a country database is
// some 10 MB, a city database under 150 MB.
const maxSize = 512 << 20

// Load reads the database at path into memory and checks it whole: a file
// that is not a MaxMind DB, is truncated or corrupt, or has an IPv4-only
// tree is an error naming the file. It keeps no file open.
func Load(path string) (*DB, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("geo.database: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("geo.database: %s: not a regular file", path)
	}
	if fi.Size() > maxSize {
		return nil, fmt.Errorf("geo.database: %s: %d bytes, more than the %d a country database needs", path, fi.Size(), maxSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("geo.database: %w", err)
	}
	return Parse(path, data)
}

// Parse reads a database from data, which it keeps; name names it in
// errors and is its Path.
func Parse(name string, data []byte) (*DB, error) {
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, fmt.Errorf("geo.database: %s: not a MaxMind DB file: %w", name, err)
	}
	if err := r.Verify(); err != nil {
		return nil, fmt.Errorf("geo.database: %s: corrupt: %w", name, err)
	}
	if r.Metadata.IPVersion != 6 {
		return nil, fmt.Errorf("geo.database: %s: an IPv%d database; want one with IPv6 (it answers IPv4 too)", name, r.Metadata.IPVersion)
	}
	sum := sha256.Sum256(data)
	return &DB{reader: r, Path: name, SHA256: hex.EncodeToString(sum[:]), Type: r.Metadata.DatabaseType,
		Built: r.Metadata.BuildTime(), Size: int64(len(data))}, nil
}

// record is the part of a GeoIP2/GeoLite2 Country or City record (and of
// the DB-IP and IPinfo databases in the same layout) that names the country.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Registered struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

// Country returns the country of a, an upper-case ISO 3166-1 alpha-2 code
// (see blocklist.Country), or "" when the database does not know it: no
// entry, no country in the entry, a code that is no country (such as EU).
// The country where the address is used wins over the one it is
// registered in. A nil DB knows nothing.
func (d *DB) Country(a netip.Addr) string {
	if d == nil || !a.IsValid() {
		return ""
	}
	var rec record
	if err := d.reader.Lookup(a.Unmap()).Decode(&rec); err != nil {
		return ""
	}
	code := rec.Country.ISOCode
	if code == "" {
		code = rec.Registered.ISOCode
	}
	c, _ := blocklist.Country(code)
	return c
}

// Load results, the values of the result label.
const (
	ResultSuccess   = "success"
	ResultFailure   = "failure"
	ResultUnchanged = "unchanged"
)

// Metrics are the database's metrics and the scoped-block counter.
type Metrics struct {
	// Loads counts load attempts of geo.database by result (success,
	// failure, unchanged).
	Loads *prometheus.CounterVec
	// Built is the build time of the database in use (Unix seconds); 0
	// without one. Its age is time() - Built.
	Built prometheus.Gauge
	// LastSuccessful is 1 when the last load attempt succeeded (or found
	// the file unchanged), else 0; 1 without a database configured.
	LastSuccessful prometheus.Gauge
	// Blocks counts requests a scoped rule blocked, by the visitor's
	// country (an ISO code, or "unknown"): at most 251 series.
	Blocks *prometheus.CounterVec
	blocks map[string]prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg; every series
// of a fixed label value starts at zero.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_geo_database_loads_total", Help: "Load attempts of geo.database by result (success, failure, unchanged).",
		}, []string{"result"}),
		Built: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_geo_database_build_timestamp_seconds", Help: "Build time (build_epoch) of the country database in use, Unix seconds; 0 without one.",
		}),
		LastSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeblock_geo_database_last_load_successful", Help: "1 if the last load attempt of geo.database succeeded or found it unchanged, else 0 (the last good database stays in use).",
		}),
		Blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeblock_geo_blocked_requests_total", Help: "Requests blocked by a rule scoped to countries, by the visitor's country (ISO 3166-1 alpha-2, or unknown).",
		}, []string{"country"}),
		blocks: map[string]prometheus.Counter{},
	}
	reg.MustRegister(m.Loads, m.Built, m.LastSuccessful, m.Blocks)
	for _, r := range []string{ResultSuccess, ResultFailure, ResultUnchanged} {
		m.Loads.WithLabelValues(r)
	}
	m.LastSuccessful.Set(1)
	for _, c := range append(blocklist.Countries(), "unknown") {
		m.blocks[c] = m.Blocks.WithLabelValues(c)
	}
	return m
}

// Blocked counts one request blocked by a scoped rule for a visitor from
// country ("" for unknown). It does not allocate.
func (m *Metrics) Blocked(country string) {
	if m == nil {
		return
	}
	if c, ok := m.blocks[country]; ok {
		c.Inc()
		return
	}
	m.blocks["unknown"].Inc()
}

// Source holds the database in use and loads it again when its file
// changes. The zero value is not usable; see NewSource. It is safe for
// concurrent use.
type Source struct {
	cur     atomic.Pointer[DB]
	metrics *Metrics

	mu      sync.Mutex
	path    string
	stat    fileStamp
	lastErr error
}

// fileStamp is what Refresh compares to tell a file changed without
// reading it.
type fileStamp struct {
	size  int64
	mtime time.Time
	ok    bool
}

// NewSource returns a Source without a database; m may be nil.
func NewSource(m *Metrics) *Source { return &Source{metrics: m} }

// Current returns the database in use, or nil.
func (s *Source) Current() *DB {
	if s == nil {
		return nil
	}
	return s.cur.Load()
}

// Country returns the country of a by the database in use ("" without
// one).
func (s *Source) Country(a netip.Addr) string { return s.Current().Country(a) }

// Err returns the error of the last load attempt, nil after a success.
func (s *Source) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Refresh makes the database at path the one in use, reading it only when
// path, its size or its modification time changed (or force is set). An
// empty path drops the database. A file that fails to load (missing, bad,
// corrupt) keeps the last good database in use and is reported, counted
// and retried on the next Refresh. It returns whether the database in use
// changed.
func (s *Source) Refresh(path string, force bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if path == "" {
		s.path, s.stat, s.lastErr = "", fileStamp{}, nil
		changed := s.cur.Swap(nil) != nil
		if s.metrics != nil {
			s.metrics.Built.Set(0)
			s.metrics.LastSuccessful.Set(1)
		}
		return changed, nil
	}
	var st fileStamp
	if fi, err := os.Stat(path); err == nil {
		st = fileStamp{size: fi.Size(), mtime: fi.ModTime(), ok: true}
	}
	if !force && path == s.path && st.ok && st == s.stat && s.lastErr == nil {
		s.record(ResultUnchanged)
		return false, nil
	}
	db, err := Load(path)
	if err != nil {
		s.path, s.stat, s.lastErr = path, st, err
		s.record(ResultFailure)
		return false, err
	}
	s.path, s.stat, s.lastErr = path, st, nil
	old := s.cur.Swap(db)
	s.record(ResultSuccess)
	if s.metrics != nil {
		s.metrics.Built.Set(float64(db.Built.Unix()))
	}
	return old == nil || old.SHA256 != db.SHA256, nil
}

func (s *Source) record(result string) {
	if s.metrics == nil {
		return
	}
	s.metrics.Loads.WithLabelValues(result).Inc()
	if result == ResultFailure {
		s.metrics.LastSuccessful.Set(0)
	} else {
		s.metrics.LastSuccessful.Set(1)
	}
}
