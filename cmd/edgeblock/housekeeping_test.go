package main

import (
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
