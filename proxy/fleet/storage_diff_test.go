package fleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"

	"github.com/caddyserver/certmagic"
)

// TestStorageAgainstFileStorage runs the same operations on the Redis
// Storage and on certmagic's own FileStorage, the library behaviour the
// Redis Storage stands in for, and requires the same answer from both: the
// value, the keys listed, and whether an error is fs.ErrNotExist. A row
// where the two differ on purpose is listed in differs, with the reason.
func TestStorageAgainstFileStorage(t *testing.T) {
	ctx := ctxT(t)
	backends := map[string]certmagic.Storage{
		"redis": newTestStorages(t, 1)[0],
		"file":  &certmagic.FileStorage{Path: t.TempDir()},
	}
	files := map[string]string{
		"certificates/acme/a.example/a.example.crt":  "cert a",
		"certificates/acme/a.example/a.example.key":  "key a",
		"certificates/acme/a.example/a.example.json": "{}",
		"certificates/acme/b.example/b.example.crt":  "cert b",
		"acme/ca/users/ops@example/ops.json":         "user",
		"last_clean.json":                            "{}",
	}
	ops := []struct {
		name string
		do   func(s certmagic.Storage) string
	}{
		{"load file", func(s certmagic.Storage) string { return load(ctx, s, "certificates/acme/a.example/a.example.key") }},
		{"load missing", func(s certmagic.Storage) string { return load(ctx, s, "certificates/nope.crt") }},
		{"load dir", func(s certmagic.Storage) string { return errKind(loadErr(ctx, s, "certificates/acme")) }},
		{"exists file", func(s certmagic.Storage) string { return fmt.Sprint(s.Exists(ctx, "last_clean.json")) }},
		{"exists dir", func(s certmagic.Storage) string { return fmt.Sprint(s.Exists(ctx, "certificates/acme")) }},
		{"exists partial name", func(s certmagic.Storage) string { return fmt.Sprint(s.Exists(ctx, "certificates/acme/a")) }},
		{"exists missing", func(s certmagic.Storage) string { return fmt.Sprint(s.Exists(ctx, "nope")) }},
		{"stat file", func(s certmagic.Storage) string { return stat(ctx, s, "certificates/acme/b.example/b.example.crt") }},
		{"stat dir", func(s certmagic.Storage) string { return stat(ctx, s, "certificates/acme") }},
		{"stat missing", func(s certmagic.Storage) string { return stat(ctx, s, "certificates/nope.crt") }},
		{"list dir", func(s certmagic.Storage) string { return list(ctx, s, "certificates/acme", false) }},
		{"list dir recursive", func(s certmagic.Storage) string { return list(ctx, s, "certificates", true) }},
		{"list missing", func(s certmagic.Storage) string { return list(ctx, s, "nope", false) }},
		{"delete file", func(s certmagic.Storage) string {
			return errKind(s.Delete(ctx, "certificates/acme/a.example/a.example.json")) + " " + load(ctx, s, "certificates/acme/a.example/a.example.json")
		}},
		{"delete dir", func(s certmagic.Storage) string {
			return errKind(s.Delete(ctx, "certificates/acme/b.example")) + " " + fmt.Sprint(s.Exists(ctx, "certificates/acme/b.example/b.example.crt"))
		}},
		{"after deletes", func(s certmagic.Storage) string { return list(ctx, s, "", true) }},
	}
	// differs holds the rows whose answers differ on purpose, with both.
	differs := map[string][2]string{
		// A directory holds no value: the Redis Storage has no such key and
		// says so; the file system says EISDIR. certmagic loads only the
		// files it stored, so it never asks this.
		"load dir": {"not-exist", "error"},
	}
	got := map[string][]string{}
	for name, s := range backends {
		for k, v := range files {
			if err := s.Store(ctx, k, []byte(v)); err != nil {
				t.Fatalf("%s: Store %s: %v", name, k, err)
			}
		}
		for _, op := range ops {
			got[name] = append(got[name], op.do(s))
		}
	}
	for i, op := range ops {
		r, f := got["redis"][i], got["file"][i]
		if d, ok := differs[op.name]; ok {
			if r != d[0] || f != d[1] {
				t.Errorf("%s: redis %q, certmagic.FileStorage %q; want the known difference %q, %q", op.name, r, f, d[0], d[1])
			}
			continue
		}
		if r != f {
			t.Errorf("%s: redis %q, certmagic.FileStorage %q", op.name, r, f)
		}
	}
}

func loadErr(ctx context.Context, s certmagic.Storage, key string) error {
	_, err := s.Load(ctx, key)
	return err
}

func load(ctx context.Context, s certmagic.Storage, key string) string {
	b, err := s.Load(ctx, key)
	if err != nil {
		return errKind(err)
	}
	return string(b)
}

func stat(ctx context.Context, s certmagic.Storage, key string) string {
	ki, err := s.Stat(ctx, key)
	if err != nil {
		return errKind(err)
	}
	return fmt.Sprintf("%s terminal=%v size=%d", ki.Key, ki.IsTerminal, ki.Size*btoi(ki.IsTerminal))
}

func btoi(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func list(ctx context.Context, s certmagic.Storage, dir string, recursive bool) string {
	keys, err := s.List(ctx, dir, recursive)
	if err != nil {
		return errKind(err)
	}
	slices.Sort(keys)
	return fmt.Sprint(keys)
}

// errKind is "ok", "not-exist" or "error": the distinction certmagic acts on.
func errKind(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, fs.ErrNotExist):
		return "not-exist"
	default:
		return "error"
	}
}
