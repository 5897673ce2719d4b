package blocklist

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestSameFile: SameFile answers as Is does on the file's whole content
// (same bytes, a byte changed anywhere including around the chunk
// boundaries, grown, shrunk), refuses another file name, and says why a
// file cannot be read.
func TestSameFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "list.txt")
	data := genList(30000) // over three 256 KiB chunks
	l, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { c := bytes.Clone(data); c[i] ^= 0x20; return c }
	tests := []struct {
		name    string
		content []byte
	}{
		{"the same", data},
		{"first byte", flip(0)},
		{"last byte of a chunk", flip(256<<10 - 1)},
		{"first byte of a chunk", flip(256 << 10)},
		{"last byte", flip(len(data) - 1)},
		{"grown", append(bytes.Clone(data), "x.example\n"...)},
		{"shrunk", data[:len(data)-1]},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := l.SameFile(path)
			if want := l.Is(path, tt.content); got != want || err != nil {
				t.Errorf("SameFile = %v, %v; Is says %v", got, err, want)
			}
		})
	}
	os.WriteFile(path, data, 0o644)
	if same, err := l.SameFile(filepath.Join(dir, "other.txt")); same || err != nil {
		t.Errorf("another file name: %v, %v; want false, nil", same, err)
	}
	os.Remove(path)
	if same, err := l.SameFile(path); same || !os.IsNotExist(err) {
		t.Errorf("a missing file: %v, %v; want false and the error", same, err)
	}
}
