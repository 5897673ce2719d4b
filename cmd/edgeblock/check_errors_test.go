package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCheckPrintsEveryProblem runs `edgeblock check` on configs with
// several kinds of problems and compares its output line by line.
func TestCheckPrintsEveryProblem(t *testing.T) {
	dir := copyTestdata(t, "errors.yaml", "placeholders.yaml", "blocklist.txt")
	errorsYAML, placeholders := filepath.Join(dir, "errors.yaml"), filepath.Join(dir, "placeholders.yaml")
	tests := []struct {
		name       string
		config     string
		code       int
		stdout     string
		wantStderr []string
	}{
		{"errors", errorsYAML, 1, "", []string{
			errorsYAML + ":6: blocklist.polcy: unknown key (did you mean policy?)",
			errorsYAML + `:8: routes[0].host: invalid host name "bad host.example": a name with a space`,
			errorsYAML + `:10: routes[1].host: invalid host name "shop-.customer.net": label "shop-" ends with '-'`,
			errorsYAML + `:13: timeouts.idle: want a duration such as 30s or 1m30s, got "soon"`,
		}},
		{"placeholders", placeholders, 0, "ok: " + placeholders, []string{
			"warning: " + placeholders + `:9: blocklist.policy: "https://example.com/abuse-policy" names example.com, a documentation placeholder (RFC 2606): replace it with your own`,
			"warning: " + placeholders + `:11: routes[0].host: "app.example.com" names app.example.com, a documentation placeholder (RFC 2606): replace it with your own`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd("check", "-config", tt.config)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if code != tt.code || !strings.HasPrefix(out, tt.stdout) || !slices.Equal(lines, tt.wantStderr) {
				t.Errorf("check %s: exit %d (want %d)\nstdout: %s\nstderr:\n%s\nwant stderr:\n%s", tt.name, code, tt.code, out, errOut, strings.Join(tt.wantStderr, "\n"))
			}
		})
	}
	// Once the config is good, the missing blocklist is named with its
	// absolute path and the config line.
	orig, err := os.ReadFile(errorsYAML)
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.NewReplacer("  polcy:", "  policy:", "bad host.example", "app.customer.net", "shop-.", "shop.", "idle: soon", "idle: 1m").Replace(string(orig))
	if err := os.WriteFile(errorsYAML, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd("check", "-config", errorsYAML)
	want := errorsYAML + ":5: blocklist.file: " + filepath.Join(dir, "no-such-list.txt") + ": no such file\n"
	if code != 1 || errOut != want {
		t.Errorf("check with a missing blocklist: exit %d\n%s\nwant:\n%s", code, errOut, want)
	}
}
