// Package geotest builds MaxMind-format country databases for tests, with
// github.com/maxmind/mmdbwriter. Only tests import it, so the writer is no
// part of the edgeblock binary.
package geotest

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Entry maps a network (CIDR, IPv4 or IPv6) to a country code, written as
// a GeoLite2-Country record. Registered, if set, is the
// registered_country; Country may then be empty.
type Entry struct {
	Network, Country, Registered string
}

// Build returns a GeoLite2-Country-shaped database (IPv6 tree, IPv4
// aliased, loopback and private networks allowed) with the given entries
// and build time.
func Build(t testing.TB, built time.Time, entries ...Entry) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoLite2-Country",
		Description:             map[string]string{"en": "edgeblock test fixture"},
		Languages:               []string{"en"},
		BuildEpoch:              built.Unix(),
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		_, n, err := net.ParseCIDR(e.Network)
		if err != nil {
			t.Fatalf("geotest: %v", err)
		}
		rec := mmdbtype.Map{}
		if e.Country != "" {
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(e.Country), "names": mmdbtype.Map{"en": mmdbtype.String("Country " + e.Country)}}
		}
		if e.Registered != "" {
			rec["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String(e.Registered)}
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatalf("geotest: insert %s: %v", e.Network, err)
		}
	}
	var b bytes.Buffer
	if _, err := tree.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Write builds a database (see Build) and writes it to path atomically
// (a temporary file renamed over it), as a database updater does.
func Write(t testing.TB, path string, built time.Time, entries ...Entry) {
	t.Helper()
	data := Build(t, built, entries...)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".geotest-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}
