package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy"
)

// adminClient asks a running edge's admin listener. Connecting is bounded
// tightly, so that a command with no edge running falls back at once.
var adminClient = &http.Client{
	Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext,
		ResponseHeaderTimeout: 3 * time.Second,
		Proxy:                 nil,
	},
	Timeout: 60 * time.Second,
}

// adminAddr returns the address to reach the admin listener at: the flag,
// else listen.admin of the config with an unspecified host replaced by
// loopback; "" when the listener is off.
func adminAddr(cfg *config.Config, flagValue string) string {
	a := flagValue
	if a == "" {
		a = cfg.Listen.Admin
	}
	if a == "" || a == "off" {
		return ""
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// adminTokenEnv names the environment variable whose bearer token the
// commands send to the admin listener, for an edge with admin.auth_reads.
const adminTokenEnv = "EDGEBLOCK_ADMIN_TOKEN"

// errCannotAsk marks an admin listener the command cannot ask: it needs a
// credential the command has not got, or its certificate cannot be read.
// The message says which and starts "cannot ask the edge: ".
var errCannotAsk = errors.New("cannot ask the edge")

// adminHTTP returns the scheme and client that reach the admin listener of
// cfg: plain HTTP, or with admin.tls_cert HTTPS trusting exactly the
// certificate that file holds (the one the listener serves, whatever names
// it carries), so that the commands ask the edge they run beside and no
// other. An unreadable certificate is an error wrapping errCannotAsk.
func adminHTTP(cfg *config.Config) (string, *http.Client, error) {
	if cfg.Admin.TLSCert == "" {
		return "http", adminClient, nil
	}
	path := cfg.Admin.TLSCert // made relative to the config's directory by LoadConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("%w: admin.tls_cert: %v", errCannotAsk, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", nil, fmt.Errorf("%w: admin.tls_cert: %s: no PEM certificate", errCannotAsk, path)
	}
	want := block.Bytes
	tr := adminClient.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is checked by VerifyConnection: the listener must
		// present the certificate of admin.tls_cert itself.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return fmt.Errorf("the admin listener's certificate is not the one in admin.tls_cert (%s)", path)
			}
			return nil
		},
	}
	return "https", &http.Client{Transport: tr, Timeout: adminClient.Timeout}, nil
}

// adminGet fetches path from the admin listener of cfg at addr (over HTTPS
// when admin.tls_cert is set, see adminHTTP), with the token of
// $EDGEBLOCK_ADMIN_TOKEN if set, and checks that an edgeblock answered.
// When the listener needs a credential the command lacks, the error wraps
// errCannotAsk and says which, before anything is sent.
func adminGet(cfg *config.Config, addr, path string) (*http.Response, error) {
	tok := os.Getenv(adminTokenEnv)
	if cfg.Admin.AuthReads && tok == "" {
		if cfg.Admin.TokensFile == "" {
			return nil, fmt.Errorf("%w: admin listener requires a client certificate (admin.auth_reads with admin.client_ca) and the commands present none", errCannotAsk)
		}
		return nil, fmt.Errorf("%w: admin listener requires a credential (admin.auth_reads): set %s to a token of admin.tokens_file", errCannotAsk, adminTokenEnv)
	}
	scheme, client, err := adminHTTP(cfg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest("GET", scheme+"://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return nil, fmt.Errorf("%w: GET %s: %s: the admin listener wants a read credential (admin.auth_reads): set %s to a token of admin.tokens_file", errCannotAsk, path, resp.Status, adminTokenEnv)
		}
		return nil, fmt.Errorf("GET %s: %s (an edgeblock from before this command existed?)", path, resp.Status)
	}
	return resp, nil
}

// askExplain asks the running edge at addr what a visitor to host gets.
func askExplain(cfg *config.Config, addr, host, country string) (*proxy.Explanation, error) {
	q := "/explain?host=" + url.QueryEscape(host)
	if country != "" {
		q += "&country=" + url.QueryEscape(country)
	}
	resp, err := adminGet(cfg, addr, q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var e proxy.Explanation
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return nil, fmt.Errorf("GET /explain: %w", err)
	}
	if e.Input == "" {
		return nil, errors.New("GET /explain: not an edgeblock answer")
	}
	return &e, nil
}

// runningList returns the list in effect: from the running edge's admin
// listener (GET /blocklist/rules) if one answers, else from the snapshot
// in stateDir. source says which, or why there is none.
func runningList(cfg *config.Config, adminFlag, stateDir string) (*blocklist.List, string) {
	var why []string
	if addr := adminAddr(cfg, adminFlag); addr != "" {
		l, err := fetchRunningList(cfg, addr)
		if err == nil {
			return l, fmt.Sprintf("the running edge at %s", addr)
		}
		why = append(why, fmt.Sprintf("no running edge answered at %s: %v", addr, err))
	} else {
		why = append(why, "the admin listener is off in the config")
	}
	if stateDir == "" {
		return nil, strings.Join(append(why, "no state directory"), "; ")
	}
	snap, err := reload.ReadSnapshot(stateDir)
	if err != nil {
		return nil, strings.Join(append(why, "no snapshot: "+err.Error()), "; ")
	}
	if abs, err := filepath.Abs(cfg.Path); err == nil && snap.Config.Path != abs {
		return nil, strings.Join(append(why, "the snapshot in "+stateDir+" is of another config, "+snap.Config.Path), "; ")
	}
	l, err := blocklist.Parse(snap.Blocklist.Path, snap.Blocklist.Data)
	if err != nil {
		return nil, strings.Join(append(why, "snapshot: "+err.Error()), "; ")
	}
	return l, fmt.Sprintf("the snapshot in %s, written %s (%s)", stateDir, snap.WrittenAt.Format(time.RFC3339), strings.Join(why, "; "))
}

func fetchRunningList(cfg *config.Config, addr string) (*blocklist.List, error) {
	resp, err := adminGet(cfg, addr, "/blocklist/rules")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	file := resp.Header.Get("X-Edgeblock-Blocklist-File")
	if file == "" {
		return nil, errors.New("GET /blocklist/rules: not an edgeblock answer")
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return blocklist.Parse(file+" (running)", data)
}

// printDiff prints the rules next adds, removes and changes against
// running (blocklist.List.Changes): "+ line", "- line" and
// "~ pattern: key old→new, ...", then the totals.
func printDiff(w io.Writer, next, running *blocklist.List, source string) {
	fmt.Fprintf(w, "diff against %s:\n", source)
	n := map[blocklist.ChangeKind]int{}
	for c := range next.Changes(running) {
		n[c.Kind]++
		switch c.Kind {
		case blocklist.Added:
			fmt.Fprintf(w, "+ %s\n", c.Rule.Format())
		case blocklist.Removed:
			fmt.Fprintf(w, "- %s\n", c.Rule.Format())
		case blocklist.Changed:
			attrs := make([]string, len(c.Attrs))
			for i, a := range c.Attrs {
				attrs[i] = a.Key + " " + a.String()
			}
			fmt.Fprintf(w, "~ %s: %s\n", c.Rule.Pattern(), strings.Join(attrs, ", "))
		}
	}
	fmt.Fprintf(w, "%d added, %d removed, %d changed\n", n[blocklist.Added], n[blocklist.Removed], n[blocklist.Changed])
}
