package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/config"
)

// TestHelpTopicsPrint runs `edgeblock help TOPIC` for every topic file on
// disk: each prints, exits 0, and prints exactly the file, so what the
// binary shows is what the repository shows.
func TestHelpTopicsPrint(t *testing.T) {
	files, err := filepath.Glob("help/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no help files: %v", err)
	}
	var onDisk []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".md")
		onDisk = append(onDisk, name)
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"help", name}, &stdout, &stderr); code != 0 {
				t.Fatalf("help %s: exit %d, stderr %q", name, code, stderr.String())
			}
			if stdout.String() != string(want) {
				t.Errorf("help %s printed %d bytes, the file has %d: not the same text", name, stdout.Len(), len(want))
			}
			if helpTitle(string(want)) == "" {
				t.Errorf("%s has no '# Title' line for the topic list", f)
			}
			if code := run([]string{"help", strings.ToUpper(name)}, &stdout, &stderr); code != 0 {
				t.Errorf("help %s (upper case): exit %d", strings.ToUpper(name), code)
			}
		})
	}
	if got := helpTopics(); !slices.Equal(got, onDisk) {
		t.Errorf("embedded topics %v, files on disk %v", got, onDisk)
	}
}

// TestHelpListsTopics checks that `edgeblock help` names every topic, and
// that the topics the issue asks for exist.
func TestHelpListsTopics(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, name := range helpTopics() {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + ` +\S`).MatchString(stdout.String()) {
			t.Errorf("edgeblock help does not list topic %q:\n%s", name, stdout.String())
		}
	}
	for _, name := range []string{"config", "origins", "blocklist", "pages", "commands", "fleet", "tls",
		"metrics", "logs", "admin", "hot-reload", "threat-model", "choices", "changes", "requests"} {
		if _, ok := helpTopic(name); !ok {
			t.Errorf("no help topic %q", name)
		}
	}
	for _, bad := range []string{"", "../main.go", "help/config", "config.md", "no-such-topic"} {
		if _, ok := helpTopic(bad); ok {
			t.Errorf("helpTopic(%q) found a topic", bad)
		}
	}
}

// TestReadmeMapsEveryTopic: every topic file is reachable from the README,
// so a newcomer on the repository finds what `edgeblock help` prints.
func TestReadmeMapsEveryTopic(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range helpTopics() {
		if !strings.Contains(string(readme), "](cmd/edgeblock/help/"+name+".md") {
			t.Errorf("README.md does not link cmd/edgeblock/help/%s.md", name)
		}
	}
	for _, guide := range []string{"deploy/kubernetes/README.md", "deploy/systemd/README.md", "deploy/bench/README.md"} {
		if !strings.Contains(string(readme), "]("+guide) {
			t.Errorf("README.md does not link %s", guide)
		}
	}
	if len(readme) >= 25*1024 {
		t.Errorf("README.md is %d bytes; the front door stays under 25 KB (move reference text to a help topic)", len(readme))
	}
}

// docFiles are the Markdown files whose links TestDocLinksResolve checks.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(repoRoot, "README.md")}
	help, _ := filepath.Glob("help/*.md")
	files = append(files, help...)
	guides, _ := filepath.Glob(filepath.Join(repoRoot, "deploy", "*", "README.md"))
	files = append(files, guides...)
	return files
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`(?m)^#{1,6} +(.+?)\s*$`)
	mdFence   = regexp.MustCompile("(?ms)^```.*?^```")
)

// anchors returns the GitHub anchors of a Markdown file's headings.
func anchors(text string) map[string]bool {
	text = mdFence.ReplaceAllString(text, "")
	seen := map[string]int{}
	out := map[string]bool{}
	for _, m := range mdHeading.FindAllStringSubmatch(text, -1) {
		slug := githubSlug(m[1])
		if n := seen[slug]; n > 0 {
			out[slug+"-"+string(rune('0'+n))] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// githubSlug is the anchor GitHub gives a heading: lower case, spaces to
// '-', and everything but letters, digits, '-' and '_' removed.
func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127 && r != '→' && r != '—' && r != '·':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestDocLinksResolve: every relative link in the README, the help topics
// and the deploy guides names a file that exists, and every #anchor a
// heading of the file it points into.
func TestDocLinksResolve(t *testing.T) {
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := mdFence.ReplaceAllString(string(b), "")
		text = codeSpan.ReplaceAllString(text, "``")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := f
			if file != "" {
				path = filepath.Join(filepath.Dir(f), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %q: %v", f, target, err)
					continue
				}
			}
			if anchor == "" {
				continue
			}
			tb, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s: link %q: %v", f, target, err)
				continue
			}
			if !anchors(string(tb))[anchor] {
				t.Errorf("%s: link %q: %s has no heading with anchor #%s", f, target, path, anchor)
			}
		}
	}
}

// configKey is one key the config file takes.
type configKey struct {
	path  string       // dotted: "tls.on_demand.ask", "routes[].origins[].url"
	owner reflect.Type // the struct type that has the field
	field string       // the key's own name
	leaf  bool         // no keys under it (a scalar, a list of scalars, or a map)
}

// configKeys returns every key the config file takes, from the yaml tags
// of t and the types it holds. Maps' keys are the operator's, so a map is
// a leaf; inline structs add their keys to their parent's.
func configKeys(t reflect.Type, prefix string) []configKey {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			prefix += "[]"
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []configKey
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if opts == "inline" {
			keys = append(keys, configKeys(f.Type, prefix)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		sub := configKeys(f.Type, path)
		keys = append(keys, configKey{path: path, owner: t, field: name, leaf: len(sub) == 0})
		keys = append(keys, sub...)
	}
	return keys
}

// configReference is where the config reference documents keys: the
// config topic for every key, and the topic a section's keys are detailed
// in, whose tables write keys relative to the prefixes given.
var configReference = []struct {
	file     string
	prefixes []string
}{
	{"help/config.md", []string{""}},
	{"help/origins.md", []string{"", "origins.", "routes[]."}},
	{"help/fleet.md", []string{""}},
	{"help/tls.md", []string{""}},
}

var (
	codeSpan = regexp.MustCompile("`([^`]+)`")
	keyLike  = regexp.MustCompile(`^[a-z0-9_]+(\[\])*(\.[a-z0-9_]+(\[\])*)*$`)
)

// documentedKeys reads the table rows of text. A code span with a dot
// in any cell is a key (`tls.on_demand.ask`); in the first cell, the bare
// names after a dotted one are its siblings ("`fleet.redis.tls.enabled`,
// `ca_file`" documents fleet.redis.tls.ca_file; "`origins.lb`, `.cookie`"
// documents origins.cookie), and a lone bare name is a key of its own
// (`lb` in a table of route settings).
//
// With firstOnly, only the first cell is read.
func documentedKeys(text string, prefixes []string, firstOnly bool) map[string]bool {
	keys := map[string]bool{}
	note := func(key string) {
		for _, p := range prefixes {
			keys[p+key] = true
			keys[strings.ReplaceAll(p+key, "[]", "")] = true
		}
	}
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		first, rest, _ := strings.Cut(line[1:], " | ")
		parent := ""
		for _, m := range codeSpan.FindAllStringSubmatch(first, -1) {
			span := strings.TrimSpace(m[1])
			switch {
			case strings.HasPrefix(span, "."):
				note(parent + span[1:])
			case strings.Contains(span, "."):
				note(span)
				parent = span[:strings.LastIndex(span, ".")+1]
			default:
				note(parent + span)
			}
		}
		if firstOnly {
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(rest, -1) {
			if span := strings.TrimSpace(m[1]); keyLike.MatchString(span) && strings.Contains(span, ".") {
				note(span)
			}
		}
	}
	return keys
}

// TestConfigReferenceMentionsEveryKey fails when the config file takes a
// key that the config reference does not document: add the key to a
// table of help/config.md (or of the section's topic in configReference).
// A field of a type used in two places (tls.dns and routes[].tls.dns, the
// origins: defaults and a route's settings) is documented once.
func TestConfigReferenceMentionsEveryKey(t *testing.T) {
	documented := map[string]bool{}
	for _, ref := range configReference {
		b, err := os.ReadFile(ref.file)
		if err != nil {
			t.Fatal(err)
		}
		for k := range documentedKeys(string(b), ref.prefixes, false) {
			documented[k] = true
		}
	}
	keys := configKeys(reflect.TypeFor[config.Config](), "")
	if len(keys) < 100 {
		t.Fatalf("found only %d config keys; the walk of proxy.Config is broken", len(keys))
	}
	type field struct {
		owner reflect.Type
		name  string
	}
	fieldDocumented := map[field]bool{}
	for _, k := range keys {
		if documented[k.path] || documented[strings.ReplaceAll(k.path, "[]", "")] {
			fieldDocumented[field{k.owner, k.field}] = true
		}
	}
	for _, k := range keys {
		if k.leaf && !fieldDocumented[field{k.owner, k.field}] {
			t.Errorf("config key %s is not documented: add it to a table of help/config.md (or of origins.md, fleet.md, tls.md for their sections)", k.path)
		}
	}
}

// TestDocumentedKeysExist is the other direction, for the config topic's
// main table: a key it documents that the config no longer takes is a
// stale row.
func TestDocumentedKeysExist(t *testing.T) {
	b, err := os.ReadFile("help/config.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, k := range configKeys(reflect.TypeFor[config.Config](), "") {
		keys[k.path] = true
		keys[strings.ReplaceAll(k.path, "[]", "")] = true
	}
	for k := range documentedKeys(string(b), []string{""}, true) {
		if !keys[k] && keyLike.MatchString(k) {
			t.Errorf("help/config.md documents %s, which the config does not take", k)
		}
	}
}

// TestReadmeWalkthrough keeps the README's ten-minute walkthrough true:
// the config it shows is deploy/examples/two-sites.yaml, which passes
// check with an empty list, and the block and explain steps say what the
// README says they say.
func TestReadmeWalkthrough(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "examples", "two-sites.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(example)+"```\n") {
		t.Errorf("the README's walkthrough config is not deploy/examples/two-sites.yaml as it is")
	}
	for _, first := range []string{
		"go run ./cmd/edgeblock demo     # the demo",
		"bash .ci/run                    # the tests",
	} {
		if !strings.Contains(string(readme), first) {
			t.Errorf("README.md no longer starts with %q", first)
		}
	}

	dir := t.TempDir()
	config := filepath.Join(dir, "edgeblock.yaml")
	if err := os.WriteFile(config, example, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blocklist.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		want []string
	}{
		{[]string{"check", "-config", config, "-admin", "off", "-state-dir", "off"},
			[]string{"ok: " + config + ": 2 routes; " + filepath.Join(dir, "blocklist.txt") + ": 0 rules"}},
		{[]string{"block", "-config", config, "old.example.net", "reason=Phishing campaign", "-comment", "TICKET-1"},
			[]string{`added: old.example.net reason="Phishing campaign" (` + filepath.Join(dir, "blocklist.txt") + ":2)", ": TICKET-1"}},
		{[]string{"explain", "-config", config, "-admin", "off", "old.example.net"},
			[]string{"visitor gets: 403 block page"}},
		{[]string{"explain", "-config", config, "-admin", "off", "blog.example.net"},
			[]string{"route: blog.example.net"}},
	}
	for _, s := range steps {
		code, out, errOut := runCmd(s.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", s.args, code, out, errOut)
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", s.args, w, out)
			}
		}
	}
}

// TestDocsCarryNoHistory keeps history out of the product docs: issue
// numbers and the commits a measurement was taken at belong in commit
// messages, where `git log` finds them beside the change.
func TestDocsCarryNoHistory(t *testing.T) {
	history := regexp.MustCompile(`(?i)\bissues? #?\d+|\b(main|commit|branch) at [0-9a-f]{7,40}\b|\bthis branch\b|\btoday's main\b`)
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := history.FindString(line); m != "" {
				t.Errorf("%s:%d: %q is history: say it in the commit message", f, i+1, m)
			}
		}
	}
}
