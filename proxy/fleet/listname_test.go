package fleet

import "testing"

func TestListName(t *testing.T) {
	for _, n := range []int64{1, 42, 1 << 40} {
		if got, ok := VersionOfListName(ListName(n)); !ok || got != n {
			t.Errorf("VersionOfListName(ListName(%d)) = %d, %v", n, got, ok)
		}
	}
	for _, name := range []string{"", "/etc/edgeblock/blocklist.txt", "fleet:v", "fleet:v0", "fleet:v-3", "fleet:vx", "fleet:42"} {
		if n, ok := VersionOfListName(name); ok {
			t.Errorf("VersionOfListName(%q) = %d, true; want false", name, n)
		}
	}
}
