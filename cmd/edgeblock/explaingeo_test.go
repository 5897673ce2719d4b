package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExplainCountry: explain -country shows the scope of the rules that
// cover a name and the decision for a visitor from that country (here
// from the files; the admin listener's /explain takes the same
// country= parameter).
func TestExplainCountry(t *testing.T) {
	dir := copyTestdata(t, "edgeblock.yaml")
	cfg := filepath.Join(dir, "edgeblock.yaml")
	list := "court.example reason=\"Spam source\"\ncourt.example countries=FR status=451 reason=\"French order\"\n*.tv.example except_countries=US,CA\n"
	if err := os.WriteFile(filepath.Join(dir, "blocklist.txt"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want []string
		code int
	}{
		{[]string{"-country", "fr", "www.court.example"}, []string{"rule: court.example at", ":2", "scope: countries=FR", "visitor gets: 451 block page",
			"scoped rules (the decision depends on the visitor's country; this answer is for FR):", "court.example countries=FR at"}, 0},
		{[]string{"-country", "DE", "court.example"}, []string{"rule: court.example at", ":1\n", "visitor gets: 403 block page", "this answer is for DE"}, 0},
		{[]string{"court.example"}, []string{"visitor gets: 403 block page", "this answer is for unknown"}, 0},
		{[]string{"-country", "US", "a.tv.example"}, []string{"rule: none", "*.tv.example except_countries=CA,US at"}, 0},
		{[]string{"-country", "JP", "a.tv.example"}, []string{"rule: *.tv.example", "scope: except_countries=CA,US", "visitor gets: 403 block page"}, 0},
		{[]string{"-country", "XX", "court.example"}, nil, 2},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(append([]string{"explain", "-config", cfg}, tt.args...)...)
		if code != tt.code {
			t.Errorf("explain %v: exit %d, want %d: %s", tt.args, code, tt.code, errOut)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("explain %v lacks %q:\n%s", tt.args, w, out)
			}
		}
	}
	// A name no scoped rule covers says nothing of countries.
	if _, out, _ := runCmd("explain", "-config", cfg, "-country", "FR", "other.example"); strings.Contains(out, "scoped") {
		t.Errorf("explain other.example:\n%s", out)
	}
}
