package config

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yamlSyntaxProblem turns the YAML parser's syntax error on data into one
// "file:line: field: message (hint)" problem. The parser names the line
// where the collection holding the mistake starts (a routes: list for a
// mis-indented key ten routes down); the line it names here is the first
// one whose addition makes the document fail to parse, found by parsing
// prefixes of it (a binary search from the parser's line), and the field
// is the path of keys and list items that leads to it, read from the
// indentation of the lines above.
func yamlSyntaxProblem(path string, data []byte, err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	reported := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		reported, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	lines := strings.Split(string(data), "\n")
	line := reported
	if reported > 0 {
		line = firstFailingLine(lines, reported)
	}
	if line == 0 {
		return path + ": " + msg + hintFor(msg, "")
	}
	text := ""
	if line <= len(lines) {
		text = lines[line-1]
	}
	loc := path + ":" + strconv.Itoa(line)
	if name := fieldName(yamlPathAt(lines, line)); name != "" {
		loc += ": " + name
	}
	return loc + ": " + msg + hintFor(msg, text)
}

// firstFailingLine returns an n such that the first n lines fail to
// parse while the first n-1 do, by binary search: between from (the
// parser's line, usually where the collection holding the mistake starts)
// and the end, or, when the lines before from already fail (a list or a
// quote left open, which the parser reports at the end), before from.
func firstFailingLine(lines []string, from int) int {
	parses := func(n int) bool {
		var v yaml.Node
		return yaml.Unmarshal([]byte(strings.Join(lines[:n], "\n")), &v) == nil
	}
	lo, hi := from-1, len(lines) // parses(lo), !parses(hi)
	if lo < 0 || lo >= hi {
		return from
	}
	if !parses(lo) {
		lo, hi = 0, lo
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if parses(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// hintFor returns " (hint)" for a YAML syntax error message, or "".
func hintFor(msg, line string) string {
	indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
	switch {
	case strings.Contains(indent, "\t") || strings.Contains(msg, "cannot start any token") && strings.Contains(line, "\t"):
		return " (a tab in the indentation: YAML indents with spaces only)"
	case strings.Contains(msg, "mapping values are not allowed"):
		return " (a value holding \": \" must be quoted, such as 'a: b'; or the line is indented deeper than the key above it)"
	case strings.Contains(msg, "did not find expected key"), strings.Contains(msg, "did not find expected '-' indicator"),
		strings.Contains(msg, "did not find expected <document start>"):
		return " (the line is not indented like its siblings: keys of one mapping start in one column, and the items of a list each start with \"- \" in one column)"
	case strings.Contains(msg, "did not find expected ',' or ']'"):
		return " (a [ list ] is not closed: add the ] or quote the value)"
	case strings.Contains(msg, "did not find expected ',' or '}'"):
		return " (a { mapping } is not closed: add the } or quote the value)"
	case strings.Contains(msg, "could not find expected ':'"):
		return " (a key without a \":\" after it, or a quote that is not closed)"
	case strings.Contains(msg, "found unexpected end of stream"), strings.Contains(msg, "found unknown escape"):
		return " (a quote that is not closed, or a \\ escape in double quotes: use single quotes for backslashes)"
	}
	return ""
}

var yamlKeyLine = regexp.MustCompile(`^(\s*)(- +)?("[^"]*"|'[^']*'|[^\s#'"][^:#]*?)\s*:(\s|$)`)

// yamlPathAt returns the path of keys and list indexes to line n (1-based)
// of a YAML document in block style, from the indentation of the lines
// above it: the key on line n, under the nearest less indented key or list
// item, and so on up to the top. It reads text, so it works on documents
// that do not parse.
func yamlPathAt(lines []string, n int) []any {
	if n < 1 || n > len(lines) {
		return nil
	}
	indentOf := func(s string) int { return len(s) - len(strings.TrimLeft(s, " \t")) }
	skip := func(s string) bool { t := strings.TrimSpace(s); return t == "" || t[0] == '#' }
	isItem := func(s string) bool { r := strings.TrimLeft(s, " \t"); return r == "-" || strings.HasPrefix(r, "- ") }
	// itemIndex is the index of the list item on line i among the items
	// above it at the same indentation, up to a less indented line.
	itemIndex := func(i int) int {
		in, idx := indentOf(lines[i]), 0
		for j := i - 1; j >= 0; j-- {
			if skip(lines[j]) {
				continue
			}
			if jin := indentOf(lines[j]); jin < in {
				break
			} else if jin == in && isItem(lines[j]) {
				idx++
			}
		}
		return idx
	}
	var rev []any // the path, deepest first
	cur := lines[n-1]
	limit := indentOf(cur)
	if m := yamlKeyLine.FindStringSubmatch(cur); m != nil {
		rev = append(rev, strings.Trim(m[3], `"'`))
	}
	if isItem(cur) {
		rev = append(rev, itemIndex(n-1))
	}
	for i := n - 2; i >= 0 && limit > 0; i-- {
		l := lines[i]
		if skip(l) {
			continue
		}
		in := indentOf(l)
		if in >= limit {
			continue
		}
		limit = in
		if isItem(l) {
			// Our line is inside this item: a key under "- key:" is a
			// sibling of that key, so only the index goes in the path.
			rev = append(rev, itemIndex(i))
			continue
		}
		if m := yamlKeyLine.FindStringSubmatch(l); m != nil {
			rev = append(rev, strings.Trim(m[3], `"'`))
		}
	}
	slices.Reverse(rev)
	return rev
}

// duplicateKey matches the decoder's error for a key given twice.
var duplicateKey = regexp.MustCompile(`^line (\d+): mapping key "(.*)" already defined at line (\d+)$`)

// duplicateKeyProblems returns a problem for each key given twice in
// data, read from the decoder's errors, and true if there is any: then
// the config was decoded from only part of the file, and checks of its
// values would report false problems ("required" for a key that is there).
func duplicateKeyProblems(path string, data []byte, err error) ([]string, bool) {
	te, ok := err.(*yaml.TypeError)
	if !ok {
		return nil, false
	}
	var out []string
	lines := strings.Split(string(bytes.TrimSuffix(data, []byte("\n"))), "\n")
	for _, e := range te.Errors {
		m := duplicateKey.FindStringSubmatch(e)
		if m == nil {
			continue
		}
		line, _ := strconv.Atoi(m[1])
		field := yamlPathAt(lines, line)
		name := fieldName(field)
		if name == "" {
			name = m[2]
		}
		out = append(out, fmt.Sprintf("%s:%s: %s: given twice (first at line %s): remove one; the two are not merged", path, m[1], name, m[3]))
	}
	return out, len(out) > 0
}
