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
			"warning: " + placeholders + ": pages.operator: not set: the block page cannot say who blocked the site (set your organisation's name; see pages.contact and pages.appeal too)",
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

// TestCheckPageTemplates: check renders every page template in every
// language; one that uses an unknown field is reported at the config line
// that names it, with the fields a template may use.
func TestCheckPageTemplates(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("blocklist.txt", "forum.example reason=\"Spam\" reason.de=\"Werbung\" contact=mailto:abuse@edge.example\n")
	good := write("good.html", `<!DOCTYPE html><html lang="{{.Lang}}" dir="{{.Dir}}"><title>{{.Title}}</title><main>{{.Lead}}{{.Host}}{{.LeadEnd}} {{.T.contact}}</main></html>`)
	bad := write("bad.html", `<!DOCTYPE html><html lang="{{.Lang}}"><title>{{.Title}}</title><main>{{.Operater}}</main></html>`)
	cfg := write("edgeblock.yaml", "listen:\n  http: 127.0.0.1:0\n  admin: \"off\"\nblocklist:\n  file: blocklist.txt\npages:\n  operator: Example Edge\n  templates:\n    block: good.html\n    502: "+bad+"\n")
	code, out, errOut := runCmd("check", "-config", cfg)
	want := cfg + ":10: pages.templates.502: " + bad + ": language ar: template: " + bad + `:1:71: executing "` + bad + `" at <.Operater>: can't evaluate field Operater in type pages.Data; a template may use .Kind, .Status, .StatusText, .Code, .Title, .Lead, .LeadEnd, .Message, .Reason, .ReasonLang, .Policy, .BlockedBy, .Scope, .Country, .CountryName, .Operator, .Contact, .Appeal, .Lang, .Dir, .LanguageName, .T, .Host, .RequestID, .Time`
	if code != 1 || strings.TrimSpace(errOut) != want {
		t.Errorf("check: exit %d\nstdout %s\nstderr:\n%s\nwant:\n%s", code, out, errOut, want)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "    502: "+bad+"\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd("check", "-config", cfg)
	if code != 0 || !strings.Contains(out, "built-in pages, block template "+good+" in 14 languages (default en)") {
		t.Errorf("check with good templates: exit %d\n%s%s", code, out, errOut)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
