package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/fleet/fleettest"
	"go.yaml.in/yaml/v3"
)

const deployDir = "../../deploy"

// requireTool returns the path of a program; a missing one skips the test
// outside CI and fails it in CI, where .ci/run installs it.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing in CI: .ci/run installs Debian's %s", name, pkg)
		}
		t.Skipf("%s not installed (apt-get install %s); CI runs this test", name, pkg)
	}
	return p
}

// yamlDocs parses every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
}

func TestDeployYAMLParses(t *testing.T) {
	n := 0
	filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" {
			if len(yamlDocs(t, path)) == 0 {
				t.Errorf("%s holds no YAML document", path)
			}
			n++
		}
		return nil
	})
	if n < 10 {
		t.Errorf("found only %d YAML files under deploy/", n)
	}
	var dash map[string]any
	b, err := os.ReadFile(filepath.Join(deployDir, "grafana", "edgeblock.json"))
	if err != nil || json.Unmarshal(b, &dash) != nil || len(dash["panels"].([]any)) == 0 {
		t.Errorf("grafana dashboard does not parse or has no panels: %v", err)
	}
}

func TestExamplesPassCheck(t *testing.T) {
	for _, f := range []string{"production.yaml", "demo.yaml", "two-sites.yaml"} {
		// -admin off, -state-dir off: no running edge or snapshot on this machine is compared.
		code, out, errOut := runCmd("check", "-config", filepath.Join(deployDir, "examples", f), "-admin", "off", "-state-dir", "off")
		if code != 0 {
			t.Errorf("check %s: exit %d\n%s%s", f, code, out, errOut)
		}
	}
}

// get walks a decoded YAML document by keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		case int:
			l, ok := v.([]any)
			if !ok || p >= len(l) {
				return nil
			}
			v = l[p]
		}
	}
	return v
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	}
	return ""
}

// TestKubernetesManifestsAgree checks the config embedded in the ConfigMap
// with `edgeblock check`, laid out as the pod mounts it, and that ports,
// paths and probes in the manifests agree with it: for deploy/kubernetes
// (file mode) and for the fleet overlay (the base with the overlay's
// patches applied).
func TestKubernetesManifestsAgree(t *testing.T) {
	k := filepath.Join(deployDir, "kubernetes")
	t.Run("file", func(t *testing.T) { checkKubernetes(t, kubeManifests(t, k)) })
	t.Run("fleet", func(t *testing.T) {
		m := kubeManifests(t, filepath.Join(k, "fleet"))
		checkKubernetes(t, m)
		cfg := str(get(m.docs["ConfigMap/edgeblock-config"], "data", "edgeblock.yaml"))
		if !strings.Contains(cfg, "\nfleet:\n") || !strings.Contains(cfg, "source: fleet") || !strings.Contains(cfg, "tokens_file:") {
			t.Errorf("the fleet overlay's config lacks the fleet section, blocklist.source fleet or the admin tokens:\n%s", cfg)
		}
		// The overlay's config is the base's with the blocklist from the
		// fleet instead of a file, the fleet section and the admin API,
		// and without tls.storage (its default is fine in fleet mode: only a local copy lives there): the rest must
		// not drift apart.
		var base, fleet map[string]any
		yaml.Unmarshal([]byte(str(get(kubeManifests(t, k).docs["ConfigMap/edgeblock-config"], "data", "edgeblock.yaml"))), &base)
		yaml.Unmarshal([]byte(str(get(m.docs["ConfigMap/edgeblock-config"], "data", "edgeblock.yaml"))), &fleet)
		delete(base["tls"].(map[string]any), "storage")
		delete(base["blocklist"].(map[string]any), "file")
		delete(fleet["blocklist"].(map[string]any), "source")
		delete(fleet, "fleet")
		delete(fleet, "admin")
		if !reflect.DeepEqual(base, fleet) {
			t.Errorf("the fleet overlay's config differs from the base's beyond blocklist.file/source, fleet, admin and tls.storage:\nbase  %v\nfleet %v", base, fleet)
		}
	})
	// kubectl's own kustomize, where installed, renders the same: the
	// merge above is what kubectl applies.
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Logf("kubectl not installed: the kustomizations are not rendered by kustomize itself")
		return
	}
	for _, dir := range []string{k, filepath.Join(k, "fleet")} {
		out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
		if err != nil {
			t.Errorf("kubectl kustomize %s: %v\n%s", dir, err, out)
			continue
		}
		rendered := map[string]map[string]any{}
		dec := yaml.NewDecoder(bytes.NewReader(out))
		for {
			var d map[string]any
			if dec.Decode(&d) != nil {
				break
			}
			rendered[str(d["kind"])+"/"+str(get(d, "metadata", "name"))] = d
		}
		ours := kubeManifests(t, dir).docs
		if len(rendered) != len(ours) {
			t.Errorf("%s: kustomize renders %d objects, the test merges %d", dir, len(rendered), len(ours))
		}
		for key, d := range ours {
			r := rendered[key]
			for _, path := range [][]any{{"data"}, {"spec", "template", "spec", "volumes"}, {"spec", "template", "spec", "containers", 0, "volumeMounts"},
				{"spec", "template", "spec", "containers", 0, "args"}, {"spec", "template", "spec", "containers", 0, "env"}} {
				if !reflect.DeepEqual(get(d, path...), get(r, path...)) {
					t.Errorf("%s %s %v: kustomize renders %v, the test merges %v", dir, key, path, get(r, path...), get(d, path...))
				}
			}
		}
	}
}

// kubeDocs are the objects a kustomization makes, by "Kind/name".
type kubeDocs struct {
	docs map[string]map[string]any
}

// kubeManifests loads the objects of the kustomization in dir: its
// resources (files, or directories with a kustomization of their own), with
// its patches merged in as kubectl's strategic merge does for what the
// manifests use (see mergePatch). Every YAML file in dir must be a
// resource or a patch.
func kubeManifests(t *testing.T, dir string) kubeDocs {
	t.Helper()
	kus := yamlDocs(t, filepath.Join(dir, "kustomization.yaml"))[0]
	m := kubeDocs{docs: map[string]map[string]any{}}
	var used []string
	for _, r := range get(kus, "resources").([]any) {
		path := filepath.Join(dir, r.(string))
		used = append(used, filepath.Clean(r.(string)))
		if fi, err := os.Stat(path); err != nil {
			t.Fatalf("kustomization in %s lists %s: %v", dir, r, err)
		} else if fi.IsDir() {
			maps.Copy(m.docs, kubeManifests(t, path).docs)
			continue
		}
		docs := yamlDocs(t, path)
		if len(docs) != 1 {
			t.Fatalf("%s: %d documents, want 1", path, len(docs))
		}
		m.docs[str(docs[0]["kind"])+"/"+str(get(docs[0], "metadata", "name"))] = docs[0]
	}
	patches, _ := get(kus, "patches").([]any)
	for _, p := range patches {
		path := str(get(p, "path"))
		used = append(used, path)
		patch := yamlDocs(t, filepath.Join(dir, path))[0]
		key := str(patch["kind"]) + "/" + str(get(patch, "metadata", "name"))
		d, ok := m.docs[key]
		switch {
		case !ok:
			t.Errorf("patch %s: no %s to patch", path, key)
		case patch["$patch"] == "delete":
			delete(m.docs, key)
		default:
			mergePatch(d, patch)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		// Every manifest is in the kustomization; a guide (README.md) is not a manifest.
		manifest := strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")
		if !e.IsDir() && manifest && e.Name() != "kustomization.yaml" && !slices.Contains(used, e.Name()) {
			t.Errorf("%s is not in %s/kustomization.yaml", e.Name(), dir)
		}
	}
	return m
}

// mergeKeys are the keys that identify the items of a list in a strategic
// merge patch, by the list's field name (Kubernetes' patchMergeKey); lists
// not named here are replaced whole.
var mergeKeys = map[string]string{"volumeMounts": "mountPath", "volumes": "name", "containers": "name", "env": "name"}

// mergePatch merges patch into dst as kubectl's strategic merge does: maps
// key by key, the lists of mergeKeys item by item (an item with "$patch:
// delete" removes its match; new items go first), anything else replaced.
func mergePatch(dst, patch map[string]any) {
	for k, pv := range patch {
		switch pv := pv.(type) {
		case map[string]any:
			if dv, ok := dst[k].(map[string]any); ok {
				mergePatch(dv, pv)
				continue
			}
		case []any:
			if dv, ok := dst[k].([]any); ok && mergeKeys[k] != "" {
				key := mergeKeys[k]
				var added []any // items new to the list go first, as kubectl puts them
				for _, item := range pv {
					i := slices.IndexFunc(dv, func(d any) bool { return get(d, key) == get(item, key) })
					switch {
					case get(item, "$patch") == "delete":
						if i >= 0 {
							dv = slices.Delete(dv, i, i+1)
						}
					case i >= 0:
						mergePatch(dv[i].(map[string]any), item.(map[string]any))
					default:
						added = append(added, item)
					}
				}
				dst[k] = append(added, dv...)
				continue
			}
		}
		dst[k] = pv
	}
}

func checkKubernetes(t *testing.T, m kubeDocs) {
	cfgMap, listMap := m.docs["ConfigMap/edgeblock-config"], m.docs["ConfigMap/edgeblock-blocklist"]
	dep, svc, pm := m.docs["Deployment/edgeblock"], m.docs["Service/edgeblock"], m.docs["PodMonitor/edgeblock"]

	pod := get(dep, "spec", "template", "spec")
	c := get(pod, "containers", 0)
	args := get(c, "args").([]any)
	configPath := str(args[len(args)-1])
	if str(args[0]) != "serve" || str(args[len(args)-2]) != "-config" {
		t.Fatalf("container args = %v", args)
	}
	mounts := map[string]string{} // mountPath -> volume name
	for _, m := range get(c, "volumeMounts").([]any) {
		if get(m, "subPath") != nil {
			t.Errorf("volume mount %v uses subPath, which never updates on ConfigMap changes", m)
		}
		mounts[str(get(m, "mountPath"))] = str(get(m, "name"))
	}
	volumes := map[string]map[string]any{}
	for _, v := range get(pod, "volumes").([]any) {
		volumes[str(get(v, "name"))] = v.(map[string]any)
	}
	mountedFrom := func(path string) (dir string, vol map[string]any) {
		for mp, name := range mounts {
			if strings.HasPrefix(path, mp+"/") || path == mp {
				return mp, volumes[name]
			}
		}
		return "", nil
	}

	// Lay the ConfigMaps out as the pod sees them and run check.
	root := t.TempDir()
	cfgText := str(get(cfgMap, "data", "edgeblock.yaml"))
	listText := str(get(listMap, "data", "blocklist.txt"))
	_, vol := mountedFrom(configPath)
	if vol == nil || str(get(vol, "configMap", "name")) != str(get(cfgMap, "metadata", "name")) {
		t.Fatalf("-config %s is not in the config ConfigMap's mount", configPath)
	}
	// The paths as the pod sees them, from the YAML as written; the
	// config proper (defaults, validation) is parsed once the files it
	// reads are laid out.
	var raw config.Config
	if err := yaml.Unmarshal([]byte(cfgText), &raw); err != nil {
		t.Fatalf("embedded config: %v", err)
	}
	files := map[string]string{configPath: cfgText}
	fromFleet := raw.Blocklist.Source == config.SourceFleet
	if fromFleet {
		// The list comes from Redis: no blocklist ConfigMap, and nothing
		// mounts one.
		if listMap != nil || slices.ContainsFunc(get(pod, "volumes").([]any), func(v any) bool { return get(v, "configMap", "name") == "edgeblock-blocklist" }) {
			t.Error("fleet mode still has the blocklist ConfigMap or a volume of it")
		}
	} else {
		_, lvol := mountedFrom(raw.Blocklist.File)
		if lvol == nil || str(get(lvol, "configMap", "name")) != str(get(listMap, "metadata", "name")) {
			t.Fatalf("blocklist.file %s is not in the blocklist ConfigMap's mount", raw.Blocklist.File)
		}
		files[raw.Blocklist.File] = listText
	}
	// Files from Secrets: the admin tokens and the Redis password come
	// from the Secrets deploy/kubernetes/README.md has the operator create, and check gets
	// stand-ins at the same paths.
	secrets := map[string]string{}
	if f := raw.Admin.TokensFile; f != "" {
		secrets[f] = "edgeblock-admin-tokens"
		files[f] = "deploy-bot:write:" + strings.Repeat("ab", 32) + "\n"
	}
	if raw.Fleet != nil && raw.Fleet.Redis.PasswordFile != "" {
		secrets[raw.Fleet.Redis.PasswordFile] = "edgeblock-redis"
		files[raw.Fleet.Redis.PasswordFile] = "stand-in\n"
	}
	for path, name := range secrets {
		if _, vol := mountedFrom(path); vol == nil || str(get(vol, "secret", "secretName")) != name {
			t.Errorf("%s is not in the mount of Secret %s (volume %v)", path, name, vol)
		}
	}
	if fromFleet {
		// check reads the published list: a real Redis with the stand-in
		// password, where the example list is published, takes the
		// place of the operator's.
		r := fleettest.Start(t, "--requirepass", strings.TrimSpace(files[raw.Fleet.Redis.PasswordFile]))
		fc := *raw.Fleet
		fc.Redis.Addr, fc.Redis.PasswordFile = r.Addr(), filepath.Join(root, raw.Fleet.Redis.PasswordFile)
		os.MkdirAll(filepath.Dir(fc.Redis.PasswordFile), 0o755)
		os.WriteFile(fc.Redis.PasswordFile, []byte(files[raw.Fleet.Redis.PasswordFile]), 0o600)
		rdb, err := fleet.NewClient(fc)
		if err != nil {
			t.Fatal(err)
		}
		defer rdb.Close()
		example, _ := os.ReadFile(filepath.Join(deployDir, "examples", "blocklist.txt"))
		if _, err := fleet.NewStore(rdb, fc).Publish(t.Context(), example, fleet.Meta{Actor: "test"}, 0); err != nil {
			t.Fatal(err)
		}
		files[configPath] = strings.ReplaceAll(cfgText, "addr: "+raw.Fleet.Redis.Addr, "addr: "+r.Addr())
	}
	for p, text := range files {
		local := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(local), 0o755)
		os.WriteFile(local, []byte(strings.ReplaceAll(text, "/etc/edgeblock/", root+"/etc/edgeblock/")), 0o644)
	}
	cfg, err := config.LoadConfig(filepath.Join(root, configPath))
	if err != nil {
		t.Fatalf("embedded config: %v", err)
	}
	if _, svol := mountedFrom(raw.TLS.Storage); cfg.Fleet == nil && (svol == nil || get(svol, "configMap") != nil) {
		t.Errorf("tls.storage %s is not on a writable volume", raw.TLS.Storage)
	}
	// The snapshot lives on the persistent state volume, and nothing
	// checks the files before serve starts (that would defeat starting
	// from the snapshot).
	stateDir := ""
	for _, e := range get(c, "env").([]any) {
		if str(get(e, "name")) == "EDGEBLOCK_STATE_DIR" {
			stateDir = str(get(e, "value"))
		}
	}
	if mp, svol := mountedFrom(stateDir); stateDir == "" || svol == nil || get(svol, "persistentVolumeClaim") == nil {
		t.Errorf("EDGEBLOCK_STATE_DIR %q is not on a persistent volume (mounted at %q)", stateDir, mp)
	} else {
		for _, m := range get(c, "volumeMounts").([]any) {
			if str(get(m, "mountPath")) == mp && get(m, "readOnly") == true {
				t.Errorf("the state volume at %s is mounted read-only", mp)
			}
		}
	}
	if ic := get(pod, "initContainers"); ic != nil {
		t.Errorf("init containers %v run before serve; a check there defeats starting from the snapshot", ic)
	}
	if slices.ContainsFunc(args, func(a any) bool { return str(a) == "check" }) || get(c, "command") != nil {
		t.Errorf("container runs %v %v, want serve only", get(c, "command"), args)
	}
	if code, out, errOut := runCmd("check", "-config", filepath.Join(root, configPath), "-admin", "off", "-state-dir", "off"); code != 0 {
		t.Errorf("check of the ConfigMap config: exit %d\n%s%s", code, out, errOut)
	}

	// Ports.
	ports, protos := map[string]string{}, map[string]string{}
	for _, p := range get(c, "ports").([]any) {
		ports[str(get(p, "name"))] = str(get(p, "containerPort"))
		protos[str(get(p, "name"))] = str(get(p, "protocol"))
	}
	for name, addr := range map[string]string{"http": cfg.Listen.HTTP, "https": cfg.Listen.HTTPS, "admin": cfg.Listen.Admin, "quic": cfg.Listen.QUIC} {
		if ports[name] != port(addr) {
			t.Errorf("containerPort %s = %q, config listens on %q", name, ports[name], addr)
		}
	}
	if protos["quic"] != "UDP" {
		t.Errorf("containerPort quic has protocol %q, want UDP", protos["quic"])
	}
	for _, p := range get(svc, "spec", "ports").([]any) {
		if _, ok := ports[str(get(p, "targetPort"))]; !ok {
			t.Errorf("Service targetPort %v is not a container port", get(p, "targetPort"))
		}
		if str(get(p, "name")) == "quic" && (str(get(p, "port")) != strconv.Itoa(cfg.Listen.QUICAdvertisePort) || str(get(p, "protocol")) != "UDP") {
			t.Errorf("Service quic port %v/%v, want UDP on listen.quic_advertise_port %d", get(p, "port"), get(p, "protocol"), cfg.Listen.QUICAdvertisePort)
		}
		if str(get(p, "name")) == "https" && str(get(p, "port")) != strconv.Itoa(cfg.TLS.RedirectPort) {
			t.Errorf("Service https port %v differs from tls.redirect_port %d", get(p, "port"), cfg.TLS.RedirectPort)
		}
	}
	// Probes and scraping go to the admin listener.
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if str(get(c, probe, "httpGet", "path")) != path || str(get(c, probe, "httpGet", "port")) != "admin" {
			t.Errorf("%s = %v, want %s on admin", probe, get(c, probe), path)
		}
	}
	ep := get(pm, "spec", "podMetricsEndpoints", 0)
	if str(get(ep, "port")) != "admin" || str(get(ep, "path")) != "/metrics" {
		t.Errorf("PodMonitor endpoint = %v", ep)
	}
	// Security context.
	sc := get(c, "securityContext")
	if get(sc, "readOnlyRootFilesystem") != true || get(sc, "allowPrivilegeEscalation") != false ||
		!slices.Equal(get(sc, "capabilities", "drop").([]any), []any{"ALL"}) || !slices.Equal(get(sc, "capabilities", "add").([]any), []any{"NET_BIND_SERVICE"}) {
		t.Errorf("container securityContext = %v", sc)
	}
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod does not run as non-root")
	}
	// Shutdown fits in the grace period.
	grace := time.Duration(get(pod, "terminationGracePeriodSeconds").(int)) * time.Second
	preStop := time.Duration(get(c, "lifecycle", "preStop", "sleep", "seconds").(int)) * time.Second
	if *cfg.Timeouts.Drain+cfg.Timeouts.Grace+preStop > grace {
		t.Errorf("timeouts.drain %v + timeouts.grace %v + preStop %v exceed terminationGracePeriodSeconds %v", *cfg.Timeouts.Drain, cfg.Timeouts.Grace, preStop, grace)
	}
}

func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "edgeblock.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ProtectSystem=strict", "ReadWritePaths=/var/lib/edgeblock", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"NoNewPrivileges=yes", "DynamicUser=yes", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
		"ExecStart=/usr/local/bin/edgeblock serve -config /etc/edgeblock/edgeblock.yaml", "StateDirectory=edgeblock"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %s", want)
		}
	}
	// A check before start would turn a bad file into an outage instead
	// of a start from the snapshot in the state directory.
	for line := range strings.SplitSeq(string(unit), "\n") {
		if strings.HasPrefix(line, "ExecStartPre=") || strings.HasPrefix(line, "ExecCondition=") {
			t.Errorf("unit runs %q before serve", line)
		}
	}
	analyze := requireTool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	bin := edgeblockBin(t)
	// The unit names the installed path; verify it against the binary just built.
	u := filepath.Join(dir, "edgeblock.service")
	os.WriteFile(u, bytes.ReplaceAll(unit, []byte("/usr/local/bin/edgeblock"), []byte(bin)), 0o644)
	out, err := exec.Command(analyze, "verify", u).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestPrometheusRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
	// Every alert has a test case where it fires and one where it stays
	// quiet.
	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range get(yamlDocs(t, filepath.Join(dir, "alerts_test.yaml"))[0], "tests").([]any) {
		for _, at := range get(tc, "alert_rule_test").([]any) {
			name := str(get(at, "alertname"))
			if exp, _ := get(at, "exp_alerts").([]any); len(exp) > 0 {
				fires[name]++
			} else {
				quiet[name]++
			}
		}
	}
	n := 0
	for _, g := range get(yamlDocs(t, filepath.Join(dir, "alerts.yaml"))[0], "groups").([]any) {
		for _, r := range get(g, "rules").([]any) {
			name := str(get(r, "alert"))
			if name == "" {
				continue
			}
			n++
			if fires[name] == 0 || quiet[name] == 0 {
				t.Errorf("alert %s: %d test cases fire it, %d keep it quiet; want at least one of each", name, fires[name], quiet[name])
			}
		}
	}
	if n == 0 {
		t.Error("alerts.yaml holds no alert")
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := string(b)
	for _, want := range []string{"bash deploy/build.sh /out", "EXPOSE 80 443 443/udp 9090", "USER 65532:65532", `VOLUME ["/var/lib/edgeblock"]`,
		`CMD ["serve", "-config", "/etc/edgeblock/edgeblock.yaml"]`, "FROM gcr.io/distroless/static-debian12:nonroot",
		// The volume belongs to the user the process runs as, and the
		// snapshot of the last applied state goes there.
		"COPY --from=build --chown=65532:65532 /out/state /var/lib/edgeblock", "EDGEBLOCK_STATE_DIR=/var/lib/edgeblock"} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The build script the Dockerfile runs makes a static binary.
	build, _ := os.ReadFile(filepath.Join(deployDir, "build.sh"))
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "proxy.BuildVersion=", "proxy.BuildRevision="} {
		if !bytes.Contains(build, []byte(want)) {
			t.Errorf("deploy/build.sh lacks %s", want)
		}
	}
}
