package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/edgeblock/edgeblock/proxy/problem"
	"go.yaml.in/yaml/v3"
)

// decodePlain decodes n if it is a mapping of no more than host, a
// string, and origins, a list of strings, and reports whether it did.
func (r *RouteConfig) decodePlain(n *yaml.Node) bool {
	if n.Kind != yaml.MappingNode {
		return false
	}
	var host, origins *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			return false
		}
		switch {
		case k.Value == "host" && host == nil && v.Kind == yaml.ScalarNode && v.Tag == "!!str":
			host = v
		case k.Value == "origins" && origins == nil && v.Kind == yaml.SequenceNode:
			origins = v
		default:
			return false
		}
	}
	var specs []OriginSpec
	if origins != nil {
		specs = make([]OriginSpec, len(origins.Content))
		for i, o := range origins.Content {
			if o.Kind != yaml.ScalarNode || o.Tag != "!!str" {
				return false
			}
			specs[i].URL = o.Value
		}
	}
	*r = RouteConfig{Origins: specs}
	if host != nil {
		r.Host = host.Value
	}
	return true
}

// UnmarshalYAML accepts a plain URL string as well as a mapping.
func (o *OriginSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		o.URL = n.Value
		return nil
	}
	type plain OriginSpec
	return n.Decode((*plain)(o))
}

// LoadConfig reads, parses, defaults and validates the config file. The
// error, if any, is a *ConfigError that lists every problem it found.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Problems: []string{problem.FileError(err)}}
	}
	return ParseConfig(path, data)
}

var yamlLine = regexp.MustCompile(`^\s*line (\d+): (.*)$`)

// ParseConfig is LoadConfig on data read from path. A YAML syntax error
// stops it; otherwise every unknown key, every value of the wrong type and
// every semantic problem is reported, sorted by line.
func ParseConfig(path string, data []byte) (*Config, error) {
	return parseConfig(path, data, nil)
}

// LoadFleetConfig is LoadConfig for the fleet tools (publish, history,
// rollback, pull, fleet status, block -fleet): a config holding only a
// fleet: section is enough. Syntax, unknown keys and values of the wrong
// type are problems anywhere in the file, as for LoadConfig; of the other
// checks, only those of the fleet section and of blocklist.max_drop and
// blocklist.source (which the fleet tools use) count. The Config it
// returns is not fit to serve.
func LoadFleetConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Problems: []string{problem.FileError(err)}}
	}
	return parseConfig(path, data, fleetToolField)
}

// fleetToolField reports whether a check of field matters to the fleet
// tools.
func fleetToolField(field []any) bool {
	if len(field) > 0 && field[0] == "fleet" {
		return true
	}
	switch fieldName(field) {
	case "blocklist.max_drop", "blocklist.source":
		return true
	}
	return false
}

// parseConfig is ParseConfig; with only set, a problem found by validate
// counts only if only(field) is true.
func parseConfig(path string, data []byte, only func(field []any) bool) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &ConfigError{Problems: []string{yamlSyntaxProblem(path, data, err)}}
	}
	c := &Config{Path: path, SHA256: fmt.Sprintf("%x", sha256.Sum256(data)), src: &root}
	v := validator{path: path, root: &root}
	if len(root.Content) > 0 {
		doc := root.Content[0]
		v.checkKeys(doc, reflect.TypeFor[Config](), nil)
		// Decoding goes on past values of the wrong type, which are left
		// at their zero value and reported; validate then checks the rest.
		if err := decodeConfig(doc, c); err != nil {
			if dups, ok := duplicateKeyProblems(path, data, err); ok {
				slices.SortStableFunc(dups, func(a, b string) int { return textLine(path, a) - textLine(path, b) })
				return nil, &ConfigError{Problems: dups}
			}
			// The field at each line, which type errors need, is only
			// noted when there are some: a second walk.
			v.lines = map[int]fieldAt{}
			v.checkKeys(doc, reflect.TypeFor[Config](), nil)
			v.typeErrors(err)
		}
	}
	v.fleetDefaults = c.applyDefaults()
	c.validate(&v)
	if only != nil {
		v.problems = slices.DeleteFunc(v.problems, func(p lineProblem) bool { return p.kind == problemCheck && !only(p.field) })
	}
	if problems := v.result(); len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	c.src = withoutRoutes(&root)
	slices.SortStableFunc(c.Warnings, func(a, b string) int { return textLine(path, a) - textLine(path, b) })
	return c, nil
}

// decodeConfig decodes doc into c as doc.Decode does, going on past
// values of the wrong type (a *yaml.TypeError lists them). The routes of
// a plain routes: list are decoded one by one, and a route of no more than
// a host and a list of origin URLs, that of most large configs, straight
// from its nodes, at a fifth of the decoder's cost.
func decodeConfig(doc *yaml.Node, c *Config) error {
	var routes *yaml.Node
	if doc.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(doc.Content); i += 2 {
			switch k := doc.Content[i]; {
			case k.Tag == "!!merge":
				return doc.Decode(c) // routes may come from elsewhere
			case k.Value == "routes" && routes == nil:
				routes = doc.Content[i+1]
			case k.Value == "routes":
				return doc.Decode(c) // the decoder reports the second
			}
		}
	}
	if routes == nil || routes.Kind != yaml.SequenceNode {
		return doc.Decode(c)
	}
	items := routes.Content
	routes.Content = nil
	err := doc.Decode(c)
	routes.Content = items
	var errs []string
	if err != nil {
		te, ok := err.(*yaml.TypeError)
		if !ok {
			return err
		}
		errs = te.Errors
	}
	c.Routes = make([]RouteConfig, len(items))
	for i, n := range items {
		if c.Routes[i].decodePlain(n) {
			continue
		}
		if err := n.Decode(&c.Routes[i]); err != nil {
			te, ok := err.(*yaml.TypeError)
			if !ok {
				return err
			}
			errs = append(errs, te.Errors...)
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// withoutRoutes returns the document root without the entries of its
// routes list, sharing the rest: what a Config keeps for the lines of
// problems found after it is loaded (fileError), which are about other
// sections. The routes are the bulk of a large config's nodes, about
// 900 bytes each per route, which the Config would otherwise hold for as
// long as it is in effect.
func withoutRoutes(root *yaml.Node) *yaml.Node {
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return root
	}
	doc := *root.Content[0]
	doc.Content = slices.Clone(doc.Content)
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "routes" {
			routes := *doc.Content[i+1]
			routes.Content = nil
			doc.Content[i+1] = &routes
		}
	}
	r := *root
	r.Content = []*yaml.Node{&doc}
	return &r
}

// textLine returns the line of a "path:line: ..." message, or 0.
func textLine(path, msg string) int {
	rest, ok := strings.CutPrefix(msg, path+":")
	if !ok {
		return 0
	}
	n, _, _ := strings.Cut(rest, ":")
	line, _ := strconv.Atoi(n)
	return line
}

var yamlTypeError = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")

// typeErrors records the YAML decoder's type errors with the field each is
// about, and in words a reader of the config knows.
func (v *validator) typeErrors(err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		v.addAt(0, nil, problemType, "%v", err)
		return
	}
	for _, e := range te.Errors {
		m := yamlTypeError.FindStringSubmatch(e)
		if m == nil {
			line := 0
			if lm := yamlLine.FindStringSubmatch(e); lm != nil {
				line, _ = strconv.Atoi(lm[1])
				e = lm[2]
			}
			v.addAt(line, v.lines[line].field, problemType, "%s", e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		at := v.lines[line]
		got := map[string]string{"map": "a mapping", "seq": "a list", "null": "nothing"}[m[2]]
		switch {
		case got != "":
		case at.node != nil && at.node.Kind == yaml.ScalarNode:
			got = strconv.Quote(at.node.Value) // the decoder's message shortens it
		default:
			got = strconv.Quote(m[3])
		}
		v.addAt(line, at.field, problemType, "want %s, got %s", typeWords(m[4]), got)
	}
}

// typeWords describes a Go type named in a YAML type error.
func typeWords(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration such as 30s or 1m30s"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "a mapping of keys"
}
