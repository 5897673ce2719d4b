package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/edgeblock/edgeblock/proxy/problem"
	"go.yaml.in/yaml/v3"
)

// ConfigError lists every problem of a configuration, each as
// "file:line: message" where the line is known.
type ConfigError struct {
	Problems []string
}

// Error returns the problems, one per line.
func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

// fileError reports that the file a config field names (such as
// blocklist.file) cannot be read, as "config:line: field: /abs/path: no
// such file", so that the message leads to both the setting and the file.
func (c *Config) FileError(field []any, err error) error {
	v := validator{path: c.Path, root: c.src}
	return errors.New(v.format(field, "%s", problem.FileError(err)))
}

// validator collects problems with the line of the field they are about.
type validator struct {
	path     string
	root     *yaml.Node
	lines    map[int]fieldAt // the deepest field at each line, for type errors
	problems []lineProblem
	// originTLS is the outcome of checking each distinct origin_tls block.
	originTLS map[OriginTLSConfig]error
	// fleetDefaults is the fleet section's defaults error (applyDefaults).
	fleetDefaults error
}

// fieldAt is a field path and its YAML node.
type fieldAt struct {
	field []any
	node  *yaml.Node
}

// lineProblem is one problem of a config, at its line.
type lineProblem struct {
	line  int
	field []any
	kind  problemKind
	text  string // "file:line: field: message"
}

type problemKind int

const (
	problemCheck problemKind = iota // found by validate
	problemKey                      // an unknown key
	problemType                     // a value of the wrong type
)

// addProblems records the problems a section reported, its paths below
// the section at field.
func (v *validator) addProblems(field []any, ps problem.List) {
	for _, p := range ps {
		v.addf(p.Path.Under(field...), "%s", p.Msg)
	}
}

// addf records a problem about the field at path (keys and indexes, such
// as "routes", 0, "origins", 1).
func (v *validator) addf(field []any, format string, args ...any) {
	v.addAt(lineOf(v.root, field), field, problemCheck, format, args...)
}

// addAt records a problem at a known line.
func (v *validator) addAt(line int, field []any, kind problemKind, format string, args ...any) {
	v.problems = append(v.problems, lineProblem{line: line, field: field, kind: kind,
		text: formatProblem(v.path, line, field, fmt.Sprintf(format, args...))})
}

// format returns "file:line: field: message" for the field at path.
func (v *validator) format(field []any, format string, args ...any) string {
	return formatProblem(v.path, lineOf(v.root, field), field, fmt.Sprintf(format, args...))
}

func formatProblem(path string, line int, field []any, msg string) string {
	loc := path
	if line > 0 {
		loc += ":" + strconv.Itoa(line)
	}
	if name := fieldName(field); name != "" {
		return fmt.Sprintf("%s: %s: %s", loc, name, msg)
	}
	return loc + ": " + msg
}

// result returns the problems sorted by line. A check of a field whose
// value had the wrong type (and so was left at its zero value) is left
// out: the type error says what is wrong with it.
func (v *validator) result() []string {
	var bad [][]any
	for _, p := range v.problems {
		if p.kind == problemType {
			bad = append(bad, p.field)
		}
	}
	var out []lineProblem
	for _, p := range v.problems {
		if p.kind == problemCheck && slices.ContainsFunc(bad, func(f []any) bool { return related(f, p.field) }) {
			continue
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b lineProblem) int { return a.line - b.line })
	texts := make([]string, len(out))
	for i, p := range out {
		texts[i] = p.text
	}
	return texts
}

// related reports whether one field path is a prefix of the other.
func related(a, b []any) bool {
	n := min(len(a), len(b))
	return n > 0 && slices.Equal(a[:n], b[:n])
}

func fieldName(field []any) string { return problem.Path(field).String() }

// lineOf returns the line of the deepest node along field that exists in
// the document, or 0.
func lineOf(root *yaml.Node, field []any) int {
	if root == nil || len(root.Content) == 0 {
		return 0
	}
	n := root.Content[0]
	line := 0
	for _, f := range field {
		var next *yaml.Node
		switch f := f.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == f {
						next = n.Content[i+1]
						line = n.Content[i].Line
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && f < len(n.Content) {
				next = n.Content[f]
			}
		}
		if next == nil {
			return line
		}
		n = next
		line = n.Line
	}
	return line
}
