// Package problem is the one shape of a config problem: the path of the
// field it is about and a message. Every package that owns a config
// section (proxy/origin, proxy/fleet) reports its problems this way, with
// paths from its section's root; the config loader prefixes the section's
// own path and turns the path into the problem's line in the file. No
// problem is ever a string to be parsed back.
//
// It imports nothing of edgeblock's.
package problem

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// Path is a field path: mapping keys (string) and sequence indices (int)
// from a root, such as {"redis", "addrs", 1}. The zero Path is the root.
type Path []any

// String returns the path as the docs write a key: "redis.addrs[1]".
func (p Path) String() string {
	var b strings.Builder
	for _, f := range p {
		switch f := f.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f)
		case int:
			b.WriteString("[" + strconv.Itoa(f) + "]")
		}
	}
	return b.String()
}

// Under returns p below the section at root: root's keys, then p's.
func (p Path) Under(root ...any) Path {
	return append(append(Path{}, root...), p...)
}

// Problem is one problem of a config section.
type Problem struct {
	// Path is the field the problem is about, from the section's root.
	Path Path
	// Msg says what is wrong and what is wanted, without the path.
	Msg string
}

// String returns "path: message".
func (p Problem) String() string {
	if len(p.Path) == 0 {
		return p.Msg
	}
	return p.Path.String() + ": " + p.Msg
}

// List gathers the problems of a section; the zero List is empty.
type List []Problem

// Addf adds a problem at path.
func (l *List) Addf(path Path, format string, args ...any) {
	*l = append(*l, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Err returns nil for an empty list, else an error of one problem a line,
// each path under root ("fleet.redis.addr: required").
func (l List) Err(root ...any) error {
	if len(l) == 0 {
		return nil
	}
	lines := make([]string, len(l))
	for i, p := range l {
		lines[i] = Problem{Path: p.Path.Under(root...), Msg: p.Msg}.String()
	}
	return errors.New(strings.Join(lines, "\n"))
}

// FileError describes a failed file operation as "/abs/path: reason",
// without the operation ("open", "stat") Go puts in front.
func FileError(err error) string {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	path := pe.Path
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	switch {
	case errors.Is(pe.Err, fs.ErrNotExist):
		return path + ": no such file"
	case errors.Is(pe.Err, fs.ErrPermission):
		return path + ": permission denied"
	}
	return path + ": " + pe.Err.Error()
}
