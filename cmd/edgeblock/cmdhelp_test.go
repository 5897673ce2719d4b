package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpEveryCommand: help CMD and CMD -h print the same help to
// standard output and exit 0, with a description, the arguments, every
// flag the command registers, examples and exit codes.
func TestHelpEveryCommand(t *testing.T) {
	for _, c := range visible() {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			code, help, stderr := runCmd(append([]string{"help"}, strings.Fields(c.name)...)...)
			if code != 0 || stderr != "" {
				t.Fatalf("help %s: exit %d, stderr %q", c.name, code, stderr)
			}
			for _, want := range []string{"edgeblock " + c.name + ": " + c.summary, "usage: edgeblock " + c.name, "exit codes:\n"} {
				if !strings.Contains(help, want) {
					t.Errorf("help %s lacks %q:\n%s", c.name, want, help)
				}
			}
			if c.desc == "" || !strings.Contains(help, strings.Fields(c.desc)[0]) {
				t.Errorf("help %s has no description", c.name)
			}
			if c.args != "" && !strings.Contains(help, "arguments:\n  "+c.args) {
				t.Errorf("help %s lacks its arguments %q", c.name, c.args)
			}
			if len(c.examples) > 0 && !strings.Contains(help, "examples:\n  "+c.examples[0]) {
				t.Errorf("help %s lacks its examples", c.name)
			}
			// Every flag the command's FlagSet registers is documented,
			// in the synopsis and the flag list.
			if fs := flagsOf(c); fs != nil {
				fs.VisitAll(func(f *flag.Flag) {
					if !strings.Contains(help, "\n  -"+f.Name+"\n") && !strings.Contains(help, "\n  -"+f.Name+" ") {
						t.Errorf("help %s: flag -%s registered but not listed", c.name, f.Name)
					}
					if !strings.Contains(help, "[-"+f.Name) {
						t.Errorf("help %s: flag -%s not in the synopsis", c.name, f.Name)
					}
				})
			}
			if c.name == "help" || c.name == "completion" || c.name == "man" || c.name == "version" {
				return
			}
			code, dashH, stderr := runCmd(append(strings.Fields(c.name), "-h")...)
			if code != 0 || dashH != help || stderr != "" {
				t.Errorf("%s -h: exit %d, stderr %q; want the help of help %s on stdout, exit 0:\n%s", c.name, code, stderr, c.name, dashH)
			}
		})
	}
}

// TestHelpListsRuleAttributes: block's help names every attribute a rule
// may carry, as the parser knows them.
func TestHelpListsRuleAttributes(t *testing.T) {
	_, help, _ := runCmd("help", "block")
	for _, a := range ruleAttrs() {
		if !strings.Contains(help, a) {
			t.Errorf("help block lacks the rule attribute %s", a)
		}
	}
}

// TestUsageAndUnknown: the usage lists every command; help of nothing
// known exits 1; a bad flag exits 2 with the usage on standard error.
func TestUsageAndUnknown(t *testing.T) {
	code, out, _ := runCmd("help")
	if code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range visible() {
		if !strings.Contains(out, "  "+c.name+" ") {
			t.Errorf("usage lacks %s", c.name)
		}
	}
	if code, out, errOut := runCmd("help", "nosuch"); code != 1 || out != "" || !strings.Contains(errOut, `no command or topic "nosuch"`) {
		t.Errorf("help nosuch: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCmd("help", "-h"); code != 0 || !strings.HasPrefix(out, "edgeblock help: ") {
		t.Errorf("help -h: exit %d\n%s", code, out)
	}
	if code, _, _ := runCmd("check", "-nosuch"); code != 2 {
		t.Errorf("check -nosuch: exit %d, want 2", code)
	}
	if code, _, _ := runCmd("nosuch"); code != 2 {
		t.Errorf("nosuch: exit %d, want 2", code)
	}
}

// TestConfigEnv: $EDGEBLOCK_CONFIG is the default of -config, and -config
// still wins.
func TestConfigEnv(t *testing.T) {
	dir := copyTestdata(t, "edgeblock.yaml", "blocklist.txt")
	t.Setenv(configEnv, filepath.Join(dir, "edgeblock.yaml"))
	if code, out, errOut := runCmd("check", "-state-dir", "off"); code != 0 || !strings.Contains(out, "ok: "+filepath.Join(dir, "edgeblock.yaml")) {
		t.Errorf("check with %s: exit %d\n%s%s", configEnv, code, out, errOut)
	}
	if code, _, errOut := runCmd("check", "-state-dir", "off", "-config", filepath.Join(dir, "none.yaml")); code != 1 || !strings.Contains(errOut, "none.yaml: no such file") {
		t.Errorf("-config over %s: exit %d\n%s", configEnv, code, errOut)
	}
	_, help, _ := runCmd("help", "check")
	if !strings.Contains(help, "$"+configEnv) {
		t.Errorf("help check does not name $%s", configEnv)
	}
}

// TestCompletionScripts: each shell's script names every command and
// every flag, and bash (and zsh and fish where installed) parse it.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, script, errOut := runCmd("completion", sh)
		if code != 0 || errOut != "" {
			t.Fatalf("completion %s: exit %d: %s", sh, code, errOut)
		}
		for _, c := range visible() {
			last := c.name[strings.LastIndex(c.name, " ")+1:]
			if !strings.Contains(script, last) {
				t.Errorf("completion %s lacks the command %s", sh, c.name)
			}
			for _, f := range flagNames(c) {
				if want := "-" + f; sh == "fish" && !strings.Contains(script, "-o "+f+" ") || sh != "fish" && !strings.Contains(script, want) {
					t.Errorf("completion %s lacks %s -%s", sh, c.name, f)
				}
			}
		}
		bin, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("%s not installed: script not parsed", sh)
			continue
		}
		file := filepath.Join(t.TempDir(), "edgeblock."+sh)
		os.WriteFile(file, []byte(script), 0o644)
		if out, err := exec.Command(bin, "-n", file).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
	}
	// bash: the function completes a command's flags.
	code, script, _ := runCmd("completion", "bash")
	if code == 0 {
		cmd := exec.Command("bash", "-c", script+"\nCOMP_WORDS=(edgeblock rollback -al); COMP_CWORD=2; _edgeblock; echo \"${COMPREPLY[@]}\"")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "-allow-drop" {
			t.Errorf("bash completion of 'edgeblock rollback -al': %q, %v", out, err)
		}
		// The fleet subcommands come from the command table.
		cmd = exec.Command("bash", "-c", script+"\nCOMP_WORDS=(edgeblock fleet ''); COMP_CWORD=2; _edgeblock; echo \"${COMPREPLY[@]}\"")
		out, err = cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != fleetSubs() || !strings.Contains(fleetSubs(), "reseed") {
			t.Errorf("bash completion of 'edgeblock fleet ': %q, %v; want %q", out, err, fleetSubs())
		}
	}
	if code, _, _ := runCmd("completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
}

// TestManPage: the man page has every command and flag, and groff renders
// it without a warning.
func TestManPage(t *testing.T) {
	code, page, _ := runCmd("man")
	if code != 0 || !strings.HasPrefix(page, ".TH EDGEBLOCK 1 ") {
		t.Fatalf("man: exit %d\n%.200s", code, page)
	}
	for _, c := range visible() {
		if !strings.Contains(page, ".SS "+roff(c.name)+"\n") {
			t.Errorf("man page lacks the section of %s", c.name)
		}
		for _, f := range flagNames(c) {
			if !strings.Contains(page, `\fB\-`+roff(f)+`\fR`) {
				t.Errorf("man page lacks %s -%s", c.name, f)
			}
		}
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed")
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}
