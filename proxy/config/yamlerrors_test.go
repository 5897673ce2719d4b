package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestYAMLSyntaxErrors: a syntax error names the line of the mistake (not
// the line where the list or mapping holding it starts, which the parser
// names), the field path to it, and a hint; a key given twice is one
// problem, with no follow-on problems from the half-decoded config.
func TestYAMLSyntaxErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string // the problems, each as prefix + "…" + contained text
	}{
		// The parser says line 6, where routes' list starts.
		{"route_indent.yaml", []string{"route_indent.yaml:11: routes[2].origins: did not find expected '-' indicator (the line is not indented like its siblings"}},
		{"tab.yaml", []string{"tab.yaml:4: blocklist.file: found character that cannot start any token (a tab in the indentation: YAML indents with spaces only)"}},
		{"colon.yaml", []string{`colon.yaml:4: pages.operator: mapping values are not allowed in this context (a value holding ": " must be quoted`}},
		// The parser says line 6, the route; the [ is opened on line 7.
		{"unclosed.yaml", []string{"unclosed.yaml:7: routes[0].origins: did not find expected ',' or ']' (a [ list ] is not closed"}},
		{"dup_route.yaml", []string{"dup_route.yaml:8: routes[0].host: given twice (first at line 6): remove one; the two are not merged"}},
		{"dup_top.yaml", []string{"dup_top.yaml:5: listen: given twice (first at line 1): remove one; the two are not merged"}},
		{"dedent.yaml", []string{"dedent.yaml:6: blocklist.limits: did not find expected key (the line is not indented like its siblings"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "yamlerrors", tt.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseConfig(tt.file, data)
			ce, ok := err.(*ConfigError)
			if !ok {
				t.Fatalf("ParseConfig: %v, want a *ConfigError", err)
			}
			if len(ce.Problems) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d", strings.Join(ce.Problems, "\n"), len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(ce.Problems[i], w) {
					t.Errorf("problem %d:\n  %s\nwant it to start with\n  %s", i, ce.Problems[i], w)
				}
			}
		})
	}
}

// TestYAMLPathAt reads field paths from indentation, in documents that do
// not parse.
func TestYAMLPathAt(t *testing.T) {
	doc := strings.Split(`listen:
  http: :80
# a comment
routes:
  - host: a.example
    origins:
      - http://x:1
  -   host: b.example
    tls:
      wildcard: true
"quoted key":
  - one
  - two: 2
    three: 3
`, "\n")
	tests := []struct {
		line int
		want string
	}{
		{1, "listen"}, {2, "listen.http"}, {4, "routes"}, {5, "routes[0].host"}, {6, "routes[0].origins"},
		{7, "routes[0].origins[0]"}, {8, "routes[1].host"}, {9, "routes[1].tls"}, {10, "routes[1].tls.wildcard"},
		{11, "quoted key"}, {12, "quoted key[0]"}, {13, "quoted key[1].two"}, {14, "quoted key[1].three"},
		{0, ""}, {99, ""},
	}
	for _, tt := range tests {
		if got := fieldName(yamlPathAt(doc, tt.line)); got != tt.want {
			t.Errorf("line %d: %q, want %q", tt.line, got, tt.want)
		}
	}
}
