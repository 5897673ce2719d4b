package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runbookBase is where the alerts' runbook_url annotations point: the
// help topic files as the repository shows them.
const runbookBase = "https://github.com/edgeblock/edgeblock/blob/main/cmd/edgeblock/"

// TestAlertRunbooks: every alert carries a runbook_url that points at a
// section of a help topic (an existing heading), and that section says
// what to do: it is more than a line and names a command or an endpoint
// to look at.
func TestAlertRunbooks(t *testing.T) {
	n := 0
	for _, g := range get(yamlDocs(t, filepath.Join(deployDir, "prometheus", "alerts.yaml"))[0], "groups").([]any) {
		for _, r := range get(g, "rules").([]any) {
			name := str(get(r, "alert"))
			if name == "" {
				continue
			}
			n++
			url := str(get(r, "annotations", "runbook_url"))
			rest, ok := strings.CutPrefix(url, runbookBase)
			file, anchor, hasAnchor := strings.Cut(rest, "#")
			if !ok || !hasAnchor || !strings.HasPrefix(file, "help/") {
				t.Errorf("alert %s: runbook_url %q: want %shelp/TOPIC.md#section", name, url, runbookBase)
				continue
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Errorf("alert %s: runbook_url names %s: %v", name, file, err)
				continue
			}
			if !anchors(string(b))[anchor] {
				t.Errorf("alert %s: runbook_url anchor #%s is no heading of %s", name, anchor, file)
				continue
			}
			section := sectionOf(string(b), anchor)
			if strings.Count(section, "\n") < 2 || !regexp.MustCompile("`(edgeblock |curl |systemctl |kubectl |journalctl )").MatchString(section) {
				t.Errorf("alert %s: the runbook section #%s does not say what to do:\n%s", name, anchor, section)
			}
		}
	}
	if n == 0 {
		t.Fatal("no alerts")
	}
}

// sectionOf returns the text under the heading whose anchor is anchor, up
// to the next heading.
func sectionOf(text, anchor string) string {
	var out []string
	in := false
	for line := range strings.SplitSeq(text, "\n") {
		if m := mdHeading.FindStringSubmatch(line); m != nil && strings.HasPrefix(line, "#") {
			if in {
				break
			}
			in = githubSlug(m[1]) == anchor
			continue
		}
		if in {
			out = append(out, line)
		}
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
