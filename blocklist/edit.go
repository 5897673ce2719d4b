package blocklist

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// linePattern returns the normalized pattern of a blocklist line, or ""
// for a blank, comment or unparsable line.
func linePattern(line string) string {
	field, _ := nextField(strings.TrimSuffix(line, "\r"))
	if field == "" || field[0] == '#' {
		return ""
	}
	name, wild := strings.CutPrefix(field, "*.")
	n, err := Normalize(name)
	if err != nil {
		return ""
	}
	if wild {
		return "*." + n
	}
	return n
}

// SetRule returns data with the rule on line added, or replacing the rule
// with the same pattern; comments and the order of other lines are kept.
// The result is parsed whole, so a bad line (or a file that was already
// bad) is reported as it would be on load.
func SetRule(file string, data []byte, line string) ([]byte, error) {
	pat := linePattern(line)
	if pat == "" {
		if _, err := Parse(file, []byte(line)); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%q is not a rule", line)
	}
	lines := splitLines(string(data))
	replaced := false
	for i, l := range lines {
		if linePattern(l) == pat {
			lines[i] = line
			replaced = true
			break
		}
	}
	if !replaced {
		lines = append(lines, line)
	}
	out := []byte(strings.Join(lines, "\n") + "\n")
	if _, err := Parse(file, out); err != nil {
		return nil, err
	}
	return out, nil
}

// RemoveRule returns data without the rule whose pattern is pattern ("name"
// or "*.name"); found is false when there is none.
func RemoveRule(file string, data []byte, pattern string) (out []byte, found bool, err error) {
	pat := linePattern(pattern)
	if pat == "" {
		return nil, false, fmt.Errorf("%q is not a valid pattern", pattern)
	}
	lines := splitLines(string(data))
	kept := lines[:0]
	for _, l := range lines {
		if linePattern(l) == pat {
			found = true
			continue
		}
		kept = append(kept, l)
	}
	out = []byte(strings.Join(kept, "\n"))
	if len(kept) > 0 {
		out = append(out, '\n')
	}
	if _, err := Parse(file, out); err != nil {
		return nil, found, err
	}
	return out, found, nil
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// WriteFileAtomic replaces the file at path with data so that a reader
// sees the old content or the new, never a part: it writes a temporary
// file in the same directory, syncs it, renames it over path and syncs the
// directory. A symlink at path is followed, and its target replaced. The
// file keeps its permission bits.
func WriteFileAtomic(path string, data []byte) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
