package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkBlockFile runs edgeblock block (file mode, no edge to ask) on a
// 1,000,000-rule list, a new name each time: the command's own work
// (read, edit, write and sync, history). With -cpuprofile it shows where
// that goes.
func BenchmarkBlockFile(b *testing.B) {
	dir := b.TempDir()
	list := filepath.Join(dir, "blocklist.txt")
	var sb strings.Builder
	sb.WriteString("# generated\n")
	for i := range 1_000_000 {
		switch {
		case i%100 == 0:
			fmt.Fprintf(&sb, "site%d.example reason=\"Abuse report %d\" policy=https://blog.example.com/policy-%d\n", i, i%7, i%5)
		case i%10 == 0:
			fmt.Fprintf(&sb, "*.pages%d.example\n", i)
		default:
			fmt.Fprintf(&sb, "site%d.example\n", i)
		}
	}
	if err := os.WriteFile(list, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "edgeblock.yaml")
	if err := os.WriteFile(cfg, []byte(editConfig(list)), 0o644); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		if code := runBlock([]string{"-config", cfg, fmt.Sprintf("new%d.example", i), "-comment", "bench"}, io.Discard, io.Discard); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}
