package reload

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkSnapshotWrite1M measures writing the snapshot of a
// 1,000,000-rule list (about 17 MB), as every applied reload does.
func BenchmarkSnapshotWrite1M(b *testing.B) {
	var sb strings.Builder
	for i := range 1_000_000 {
		fmt.Fprintf(&sb, "host-%d.example\n", i)
	}
	data := []byte(sb.String())
	state := b.TempDir()
	cfg := snapshotPart{path: "/etc/edgeblock/edgeblock.yaml", sha256: HashOf([]byte("x")), data: []byte("x")}
	b.SetBytes(int64(len(data)))
	sums := [2]string{}
	for i := range sums {
		data[0] = byte('a' + i)
		sums[i] = HashOf(data)
	}
	for i := 0; b.Loop(); i++ {
		// Alternate two lists, as reloads that change it; the copy from
		// two writes ago is removed untimed, so each write is a real one.
		b.StopTimer()
		data[0] = byte('a' + i%2)
		os.Remove(filepath.Join(state, SnapshotDir, "blocklist-"+sums[i%2]+".txt"))
		b.StartTimer()
		if _, err := writeSnapshot(state, cfg, snapshotPart{path: "/etc/edgeblock/blocklist.txt", sha256: sums[i%2], data: data}, nil, 1_000_000, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
