package proxy

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// TestReloadMissingFilesNameConfigLine: a reload that cannot read the
// blocklist or the page template logs the config line that names it and
// the file's absolute path, and keeps serving the last good state.
func TestReloadMissingFilesNameConfigLine(t *testing.T) {
	o := echoOrigin(t)
	tmpl := filepath.Join(t.TempDir(), "page.html")
	custom, err := os.ReadFile("../pages/testdata/custom.html")
	if err != nil {
		t.Fatal(err)
	}
	edgetest.WriteFile(t, tmpl, string(custom))
	e := startEnv(t, "blocklist:\n  file: blocklist.txt\n  watch: false\n  poll_interval: -1s\npages:\n  template: "+tmpl+"\n"+
		routeConfig("app.example", `"`+o.URL+`"`), "blocked.example\n")

	if err := os.Remove(e.list); err != nil {
		t.Fatal(err)
	}
	e.srv.Reloader().Reload("test")
	lines := e.logs.Lines(t, "blocklist not applied; keeping the last good list")
	want := fmt.Sprintf("%s:5: blocklist.file: %s: no such file", e.config, e.list)
	if len(lines) != 1 || lines[0]["error"] != want {
		t.Errorf("blocklist failure lines = %v\nwant error %q", lines, want)
	}

	if err := os.Remove(tmpl); err != nil {
		t.Fatal(err)
	}
	e.srv.Reloader().Reload("test")
	lines = e.logs.Lines(t, "config not applied; keeping the last good config")
	want = fmt.Sprintf("%s:9: pages.template: %s: no such file", e.config, tmpl)
	if len(lines) != 1 || lines[0]["error"] != want {
		t.Errorf("template failure lines = %v\nwant error %q", lines, want)
	}
	if resp, _ := e.get("GET", "blocked.example", "/", nil); resp.StatusCode != 403 {
		t.Errorf("blocked.example = %d after failed reloads, want 403", resp.StatusCode)
	}
}
