package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const repoRoot = "../.."

// TestBuildScriptOutDirFromCaller runs deploy/build.sh from another
// directory with a relative and an absolute output directory: the binary
// lands where the caller's path points, not under the repository.
func TestBuildScriptOutDirFromCaller(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release binary")
	}
	script, err := filepath.Abs(filepath.Join(deployDir, "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	caller := t.TempDir()
	abs := filepath.Join(t.TempDir(), "abs-out")
	for _, tt := range []struct{ arg, want string }{
		{"rel/out", filepath.Join(caller, "rel", "out", "edgeblock")},
		{abs, filepath.Join(abs, "edgeblock")},
	} {
		cmd := exec.Command("bash", script, tt.arg)
		cmd.Dir = caller
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("build.sh %s: %v\n%s", tt.arg, err, out)
		}
		if _, err := os.Stat(tt.want); err != nil {
			t.Errorf("build.sh %s from %s: %v\n%s", tt.arg, caller, err, out)
		}
		if !strings.Contains(string(out), "built "+tt.want) {
			t.Errorf("build.sh %s says %q, want it to name %s", tt.arg, out, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "rel")); err == nil {
		t.Error("build.sh wrote rel/ under the repository root")
	}
}

// TestKubernetesManifestsOnlyUnderDeploy checks that no Kubernetes manifest
// lives outside deploy/kubernetes, so there is one copy to keep right.
func TestKubernetesManifestsOnlyUnderDeploy(t *testing.T) {
	out, err := exec.Command("git", "-C", repoRoot, "ls-files", "*.yaml", "*.yml").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	n := 0
	for f := range strings.FieldsSeq(string(out)) {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil || !strings.Contains(string(b), "\napiVersion:") && !strings.HasPrefix(string(b), "apiVersion:") {
			continue
		}
		n++
		if !strings.HasPrefix(f, "deploy/kubernetes/") {
			t.Errorf("%s is a Kubernetes manifest outside deploy/kubernetes", f)
		}
	}
	if n == 0 {
		t.Error("found no Kubernetes manifest at all")
	}
}

// TestGoModTidy checks that go.mod lists exactly the modules the code needs,
// the directly imported ones as direct.
func TestGoModTidy(t *testing.T) {
	cmd := exec.Command("go", "mod", "tidy", "-diff")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go mod tidy -diff: %v\n%s", err, out)
	}
}

// TestBenchRigPorts runs deploy/bench/run.sh on ports from the environment:
// with its default HTTP port taken it still runs on the ones given, and a
// taken port it is given is refused up front with the variable to change.
func TestBenchRigPorts(t *testing.T) {
	requireTool(t, "wrk", "wrk")
	script, err := filepath.Abs(filepath.Join(deployDir, "bench", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := port(taken.Addr().String())
	bench := func(env ...string) (string, error) {
		cmd := exec.Command("bash", script)
		cmd.Env = append(os.Environ(), append([]string{"BENCH_DURATION=1s", "BENCH_CONNECTIONS=2"}, env...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := bench("BENCH_HTTP_PORT="+takenPort, "BENCH_ADMIN_PORT="+port(freeAddr(t)), "BENCH_ORIGIN_PORT="+port(freeAddr(t)))
	if err == nil || !strings.Contains(out, "127.0.0.1:"+takenPort+" is in use: set BENCH_HTTP_PORT") {
		t.Errorf("bench with a taken port: %v\n%s", err, out)
	}
	if testing.Short() {
		t.Skip("the full rig run takes a while")
	}
	// Hold the default HTTP port, if we can, to show it is not used.
	if l, err := net.Listen("tcp", "127.0.0.1:18080"); err == nil {
		defer l.Close()
	}
	out, err = bench("BENCH_HTTP_PORT="+port(freeAddr(t)), "BENCH_ADMIN_PORT="+port(freeAddr(t)), "BENCH_ORIGIN_PORT="+port(freeAddr(t)))
	if err != nil {
		t.Fatalf("bench on free ports: %v\n%s", err, out)
	}
	for _, want := range []string{"1000      blocked", "1000000   proxied", "edgeblock RSS with 1000000 rules"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}
}
