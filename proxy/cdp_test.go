package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/edgetest"

	"golang.org/x/net/websocket"
)

// browser is headless Chromium driven over the DevTools protocol (CDP):
// one tab, with just the calls the page tests need. It runs JavaScript in
// the page (axe-core, DOM checks), emulates a phone or dark mode, and
// takes screenshots.
type browser struct {
	t      *testing.T
	ws     *websocket.Conn
	nextID int
}

var devtoolsURL = regexp.MustCompile(`DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)`)

// startBrowser starts Chromium with a DevTools port on loopback and
// connects to its tab. Names under example.com resolve to 127.0.0.1, so
// that pages are fetched with the Host header a visitor would send.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	skipHeavyInShort(t, "Chromium")
	bin := requireBinary(t, "chromium", "chromium")
	// The profile directory is removed after Chromium's last process has
	// gone: its helper processes outlive the browser's for a moment, and
	// on a loaded machine still write there when the test ends.
	profile := edgetest.RemovedDir(t, "edgeblock-chromium-")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--mute-audio", "--user-data-dir="+profile,
		"--host-resolver-rules=MAP *.example.com 127.0.0.1", "--remote-debugging-address=127.0.0.1",
		"--remote-debugging-port=0", "--remote-allow-origins=http://127.0.0.1", "about:blank")
	// Its own process group, killed whole when the test ends: the
	// renderer, GPU and utility processes too, not the browser alone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsURL.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	var port string
	select {
	case m := <-found:
		port = m[2]
	case <-time.After(30 * time.Second):
		t.Fatal("chromium printed no DevTools address within 30s")
	}
	// The tab's own WebSocket.
	var targets []struct {
		Type, WebSocketDebuggerURL string
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&targets)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			ws, err := websocket.Dial(tg.WebSocketDebuggerURL, "", "http://127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			ws.MaxPayloadBytes = 64 << 20 // screenshots
			t.Cleanup(func() { ws.Close() })
			b := &browser{t: t, ws: ws}
			b.call("Page.enable", nil, nil)
			b.call("Network.enable", nil, nil)
			return b
		}
	}
	t.Fatalf("chromium has no page target: %+v", targets)
	return nil
}

// call sends one CDP command and decodes its result into result (if not
// nil), skipping the events that arrive meanwhile.
func (b *browser) call(method string, params, result any) {
	b.t.Helper()
	b.nextID++
	id := b.nextID
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	b.ws.SetDeadline(time.Now().Add(60 * time.Second))
	if err := websocket.JSON.Send(b.ws, msg); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	for {
		var reply struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(b.ws, &reply); err != nil {
			b.t.Fatalf("%s: %v", method, err)
		}
		if reply.ID != id {
			continue // an event
		}
		if reply.Error != nil {
			b.t.Fatalf("%s: %s", method, reply.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(reply.Result, result); err != nil {
				b.t.Fatalf("%s result: %v", method, err)
			}
		}
		return
	}
}

// eval runs JavaScript in the page, awaiting a promise, and decodes the
// JSON-able value into out (if not nil).
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	b.call("Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &r)
	if r.ExceptionDetails != nil {
		b.t.Fatalf("script failed: %s %s", r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result.Value, out); err != nil {
			b.t.Fatalf("script result %s: %v", r.Result.Value, err)
		}
	}
}

// open sets the viewport, colour scheme and extra request headers, loads
// url and waits until the page and its fonts are loaded.
func (b *browser) open(url string, width, height int, dark bool, headers map[string]string) {
	b.t.Helper()
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height,
		"deviceScaleFactor": 1, "mobile": width < 600}, nil)
	b.setDark(dark)
	b.call("Network.setExtraHTTPHeaders", map[string]any{"headers": headers}, nil)
	b.call("Page.navigate", map[string]any{"url": url}, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var state string
		b.eval(`document.readyState === "complete" && document.location.href !== "about:blank" ? "complete" : "loading"`, &state)
		if state == "complete" {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s did not load within 30s", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.eval(`document.fonts.ready.then(() => true)`, nil)
}

func (b *browser) setDark(dark bool) {
	scheme := "light"
	if dark {
		scheme = "dark"
	}
	b.call("Emulation.setEmulatedMedia", map[string]any{"features": []map[string]string{{"name": "prefers-color-scheme", "value": scheme}}}, nil)
}

// screenshot returns a PNG of the viewport.
func (b *browser) screenshot() []byte {
	b.t.Helper()
	var r struct {
		Data []byte `json:"data"` // base64 in JSON, decoded by encoding/json
	}
	b.call("Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	return r.Data
}

// axeViolation is one failed axe-core rule, with the elements that fail.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

func (v axeViolation) String() string {
	return fmt.Sprintf("%s (%s): %s\n    %s", v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n    "))
}

// axeTags are the WCAG 2.2 A and AA rules of axe-core.
var axeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"}

// axe runs axe-core (source: the text of axe.min.js) on the loaded page
// and returns the WCAG A/AA violations.
func (b *browser) axe(source string) []axeViolation {
	b.t.Helper()
	var loaded bool
	b.eval(`typeof axe !== "undefined"`, &loaded)
	if !loaded {
		b.eval(source+"\n;true", nil)
	}
	tags, _ := json.Marshal(axeTags)
	var out []axeViolation
	b.eval(`axe.run(document, {runOnly: {type: "tag", values: `+string(tags)+`}, resultTypes: ["violations"]}).then(r =>
		r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help,
			nodes: v.nodes.map(n => n.target.join(" ") + ": " + (n.failureSummary || "").replace(/\s+/g, " "))})))`, &out)
	return out
}

// platformFonts returns the fonts Chromium drew the text of the first
// element matching selector with, most glyphs first.
func (b *browser) platformFonts(selector string) []string {
	b.t.Helper()
	var doc struct {
		Root struct {
			NodeID int `json:"nodeId"`
		} `json:"root"`
	}
	b.call("DOM.enable", nil, nil)
	b.call("CSS.enable", nil, nil)
	b.call("DOM.getDocument", map[string]any{"depth": 0}, &doc)
	var q struct {
		NodeID int `json:"nodeId"`
	}
	b.call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": selector}, &q)
	var f struct {
		Fonts []struct {
			FamilyName string  `json:"familyName"`
			GlyphCount float64 `json:"glyphCount"`
		} `json:"fonts"`
	}
	b.call("CSS.getPlatformFontsForNode", map[string]any{"nodeId": q.NodeID}, &f)
	var names []string
	for _, x := range f.Fonts {
		names = append(names, x.FamilyName)
	}
	return names
}
