package main

import (
	"embed"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// helpFiles is the reference manual: one Markdown file per topic, the same
// files the repository shows under cmd/edgeblock/help.
//
//go:embed help/*.md
var helpFiles embed.FS

// helpTopics returns the names of the reference topics ("config",
// "fleet", ...), sorted: the help files without their ".md".
func helpTopics() []string {
	entries, err := fs.ReadDir(helpFiles, "help")
	if err != nil {
		panic(err) // the directory is embedded: it cannot be missing
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".md"); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// helpTopic returns the Markdown text of topic name, and false when there
// is no such topic. Names are matched case-insensitively.
func helpTopic(name string) (string, bool) {
	name = strings.ToLower(name)
	if name == "" || strings.ContainsAny(name, "/\\.") {
		return "", false
	}
	b, err := helpFiles.ReadFile(path.Join("help", name+".md"))
	if err != nil {
		return "", false
	}
	return string(b), true
}

// helpTitle is a topic's first heading without its "#", or "" if it has none.
func helpTitle(text string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if title, ok := strings.CutPrefix(line, "# "); ok {
			return strings.TrimSpace(title)
		}
	}
	return ""
}

// listHelpTopics writes every topic with its title, as `edgeblock help`
// shows them.
func listHelpTopics(w io.Writer) {
	fmt.Fprintln(w, "reference topics (edgeblock help TOPIC):")
	for _, name := range helpTopics() {
		text, _ := helpTopic(name)
		fmt.Fprintf(w, "  %-13s %s\n", name, helpTitle(text))
	}
}
