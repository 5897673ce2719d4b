package proxy

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium runs Debian's headless Chromium with flags that keep it off the
// network and away from the user's profile.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := requireBinary(t, "chromium", "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return []byte(out.String())
}

// TestBlockPageInChromium loads the block page from a running server in
// headless Chromium: the DOM it builds has the parts a visitor needs, and
// screenshots at phone and desktop width show a rendered page. With
// UPDATE_SCREENSHOT=1 the desktop shot replaces the README's.
func TestBlockPageInChromium(t *testing.T) {
	e := startEnv(t, "routes:\n  - host: blocked.example.com\n    origins: [\"http://127.0.0.1:9\"]\n",
		`blocked.example.com reason="This site hosted a coordinated harassment campaign" policy=https://blog.example.com/why-we-terminated`+"\n")
	// Chromium is told that the name resolves to loopback, so the page is
	// fetched with the Host header a visitor would send.
	url := strings.Replace(e.url("http"), "127.0.0.1", "blocked.example.com", 1)
	resolve := "--host-resolver-rules=MAP blocked.example.com 127.0.0.1"

	dom := string(chromium(t, resolve, "--dump-dom", url+"/"))
	for _, want := range []string{`<html lang="en">`, "<main>", `<h1 id="title">This site has been blocked</h1>`,
		"coordinated harassment campaign", `href="https://blog.example.com/why-we-terminated"`, "Request ID"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}

	dir := t.TempDir()
	for _, size := range []struct {
		name string
		w, h int
	}{{"phone", 390, 844}, {"desktop", 1200, 800}} {
		shot := filepath.Join(dir, size.name+".png")
		chromium(t, resolve, "--screenshot="+shot, "--window-size="+strconv.Itoa(size.w)+","+strconv.Itoa(size.h), url+"/")
		f, err := os.Open(shot)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != size.w || b.Dy() != size.h {
			t.Errorf("%s screenshot is %v", size.name, b)
		}
		if n := colours(img); n < 20 {
			t.Errorf("%s screenshot has %d colours: nothing rendered", size.name, n)
		}
		if size.name == "desktop" && os.Getenv("UPDATE_SCREENSHOT") != "" {
			data, _ := os.ReadFile(shot)
			if err := os.WriteFile("../deploy/screenshots/block-page.png", data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// colours counts distinct colours, up to 1000.
func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= 1000 {
				return len(seen)
			}
		}
	}
	return len(seen)
}
