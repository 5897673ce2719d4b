package config

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// checkKeys reports every key of the mapping n that the struct type t does
// not have, with the full dotted path and the closest known key. It
// descends into nested structs and lists; field is the path of n, which
// checkKeys may extend in place (it copies what it keeps). With v.lines
// set it reports nothing and notes instead the field at each node's line,
// for typeErrors.
//
// A config of many routes has a node per key and value of each: the walk
// looks the struct's keys up in a table built once per type, and builds a
// path or a suggestion only for a key it reports.
func (v *validator) checkKeys(n *yaml.Node, t reflect.Type, field []any) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if v.lines != nil {
		v.lines[n.Line] = fieldAt{slices.Clone(field), n}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Duration]():
		keys := yamlKeys(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				v.checkMerge(val, t, field)
				continue
			}
			ft, ok := keys.types[k.Value]
			if !ok {
				if v.lines == nil {
					msg := "unknown key"
					if s := closest(k.Value, keys.names); s != "" {
						msg += " (did you mean " + s + "?)"
					}
					v.addAt(k.Line, append(slices.Clone(field), k.Value), problemKey, "%s", msg)
				}
				continue
			}
			if !descends(val, ft) && v.lines == nil {
				continue // a scalar: nothing to check below it
			}
			v.checkKeys(val, ft, append(field, k.Value))
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, e := range n.Content {
			if !descends(e, t.Elem()) && v.lines == nil {
				continue
			}
			v.checkKeys(e, t.Elem(), append(field, i))
		}
	}
}

// descends reports whether checkKeys has keys to check in n for type t:
// whether n is a mapping or list (or an alias of one) and t a struct or
// slice. Scalars, the bulk of a document, are skipped without a call.
func descends(n *yaml.Node, t reflect.Type) bool {
	if n.Kind == yaml.ScalarNode {
		return false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct || t.Kind() == reflect.Slice
}

// checkMerge checks the mappings merged in with "<<" against t.
func (v *validator) checkMerge(n *yaml.Node, t reflect.Type, field []any) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		for _, e := range n.Content {
			v.checkKeys(e, t, field)
		}
		return
	}
	v.checkKeys(n, t, field)
}

// keyTable is the YAML keys of a struct type.
type keyTable struct {
	types map[string]reflect.Type // each key's field type
	names []string                // the keys in field order, for suggestions
}

// keyTables caches yamlKeys, by reflect.Type: the config's types are
// few and fixed.
var keyTables sync.Map

// yamlKeys returns the YAML keys of struct type t, with inline structs'
// keys among them. It is safe for concurrent use.
func yamlKeys(t reflect.Type) *keyTable {
	if kt, ok := keyTables.Load(t); ok {
		return kt.(*keyTable)
	}
	kt := &keyTable{types: map[string]reflect.Type{}}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			inner := yamlKeys(f.Type)
			maps.Copy(kt.types, inner.types)
			kt.names = append(kt.names, inner.names...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		kt.types[name] = f.Type
		kt.names = append(kt.names, name)
	}
	got, _ := keyTables.LoadOrStore(t, kt)
	return got.(*keyTable)
}

// closest returns the known key nearest to key, at most two edits away
// (insertions, deletions, substitutions, transpositions), or "".
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD && d < len(key) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// Levenshtein with transpositions of adjacent bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
