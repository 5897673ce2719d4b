package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/proxy"
)

// runCompletion prints a completion script for bash, zsh or fish, built
// from the command table and each command's flags.
func runCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: edgeblock completion bash|zsh|fish")
		return 2
	}
	switch args[0] {
	case "bash":
		completionBash(stdout)
	case "zsh":
		completionZsh(stdout)
	case "fish":
		completionFish(stdout)
	default:
		fmt.Fprintf(stderr, "edgeblock completion: %q: want bash, zsh or fish\n", args[0])
		return 2
	}
	return 0
}

// topNames returns the first words of the commands ("fleet" once).
func topNames() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range commands {
		top, _, _ := strings.Cut(c.name, " ")
		if !seen[top] {
			seen[top] = true
			out = append(out, top)
		}
	}
	return out
}

// fleetSubs returns the fleet subcommands, "status forget ...".
func fleetSubs() string {
	var out []string
	for _, c := range commands {
		if sub, ok := strings.CutPrefix(c.name, "fleet "); ok {
			out = append(out, sub)
		}
	}
	return strings.Join(out, " ")
}

func dashed(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "-" + n
	}
	return strings.Join(out, " ")
}

func completionBash(w io.Writer) {
	fmt.Fprintf(w, `# bash completion for edgeblock (edgeblock completion bash)
_edgeblock() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "%s" -- "$cur"))
        return
    fi
    case $prev in
        -config|-o|-state-dir|-dir) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    local cmd=${COMP_WORDS[1]}
    if [ "$cmd" = fleet ] && [ "$COMP_CWORD" -eq 2 ]; then
        COMPREPLY=($(compgen -W "%s" -- "$cur"))
        return
    fi
    [ "$cmd" = fleet ] && cmd="fleet ${COMP_WORDS[2]}"
    local words=""
    case $cmd in
`, strings.Join(append(topNames(), "-h"), " "), fleetSubs())
	for _, c := range visible() {
		words := dashed(flagNames(c))
		switch c.name {
		case "help":
			words = strings.Join(topNames(), " ")
		case "completion":
			words = "bash zsh fish"
		case "block":
			words += " " + attrWords()
		}
		fmt.Fprintf(w, "        %q) words=%q ;;\n", c.name, strings.TrimSpace(words))
	}
	fmt.Fprint(w, `    esac
    COMPREPLY=($(compgen -f -W "$words" -- "$cur"))
}
complete -o filenames -F _edgeblock edgeblock
`)
}

// attrWords returns "policy= reason= ..." for completing rule attributes.
func attrWords() string {
	var out []string
	for _, a := range ruleAttrs() {
		if !strings.Contains(a, "TAG") {
			out = append(out, a+"=")
		}
	}
	return strings.Join(out, " ")
}

func completionZsh(w io.Writer) {
	fmt.Fprint(w, "#compdef edgeblock\n# zsh completion for edgeblock (edgeblock completion zsh)\n_edgeblock() {\n  local -a cmds\n  cmds=(\n")
	for _, c := range visible() {
		if !strings.Contains(c.name, " ") {
			fmt.Fprintf(w, "    %s\n", zshQuote(c.name+":"+c.summary))
		}
	}
	fmt.Fprint(w, "    'fleet:the fleet'\"'\"'s nodes'\n  )\n")
	fmt.Fprint(w, "  if (( CURRENT == 2 )); then\n    _describe command cmds\n    return\n  fi\n  local cmd=${words[2]}\n")
	fmt.Fprint(w, "  if [[ $cmd == fleet ]]; then\n    if (( CURRENT == 3 )); then\n      compadd "+fleetSubs()+"\n      return\n    fi\n    cmd=\"fleet ${words[3]}\"\n  fi\n  case $cmd in\n")
	for _, c := range visible() {
		fmt.Fprintf(w, "    %q)\n      _arguments", c.name)
		if fs := flagsOf(c); fs != nil {
			fs.VisitAll(func(f *flag.Flag) {
				name, text := flag.UnquoteUsage(f)
				text = strings.NewReplacer("[", "(", "]", ")", ":", " ").Replace(firstSentence(text))
				spec := "-" + f.Name + "[" + text + "]"
				if name != "" {
					spec += ":" + name + ":_files"
				}
				fmt.Fprintf(w, " \\\n        %s", zshQuote(spec))
			})
		}
		fmt.Fprint(w, " \\\n        '*:argument:_files'\n      ;;\n")
	}
	fmt.Fprint(w, "  esac\n}\n_edgeblock \"$@\"\n")
}

func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

func firstSentence(s string) string {
	if i := strings.IndexAny(s, ";("); i > 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func completionFish(w io.Writer) {
	fmt.Fprintln(w, "# fish completion for edgeblock (edgeblock completion fish)")
	fmt.Fprintln(w, "complete -c edgeblock -f")
	for _, c := range visible() {
		if strings.Contains(c.name, " ") {
			continue
		}
		fmt.Fprintf(w, "complete -c edgeblock -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	fmt.Fprintln(w, "complete -c edgeblock -n __fish_use_subcommand -a fleet -d \"the fleet's nodes\"")
	fmt.Fprintf(w, "complete -c edgeblock -n '__fish_seen_subcommand_from fleet' -a '%s'\n", fleetSubs())
	for _, c := range visible() {
		cond := "__fish_seen_subcommand_from " + c.name
		if sub, ok := strings.CutPrefix(c.name, "fleet "); ok {
			cond = "__fish_seen_subcommand_from fleet; and __fish_seen_subcommand_from " + sub
		}
		if fs := flagsOf(c); fs != nil {
			fs.VisitAll(func(f *flag.Flag) {
				name, text := flag.UnquoteUsage(f)
				req := ""
				if name != "" {
					req = " -r -F"
				}
				fmt.Fprintf(w, "complete -c edgeblock -n %s -o %s%s -d %s\n", fishQuote(cond), f.Name, req, fishQuote(firstSentence(text)))
			})
		}
	}
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

// runMan prints the edgeblock(1) man page in roff.
func runMan(args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintln(stderr, "usage: edgeblock man")
		return 2
	}
	w := stdout
	version, _ := proxy.Version()
	fmt.Fprintf(w, ".TH EDGEBLOCK 1 %q %q \"edgeblock manual\"\n", time.Now().UTC().Format("2006-01-02"), "edgeblock "+version)
	fmt.Fprint(w, ".SH NAME\nedgeblock \\- edge reverse proxy with a hot-reloaded blocklist\n")
	fmt.Fprint(w, ".SH SYNOPSIS\n.B edgeblock\n.I command\n[\\fIflags\\fR] [\\fIarguments\\fR]\n")
	fmt.Fprint(w, ".SH DESCRIPTION\nedgeblock terminates TLS for many hostnames and forwards their traffic to origin servers, except for hostnames on the operator's blocklist, whose visitors get a block page.\n")
	fmt.Fprintf(w, ".PP\n\\fB\\-config\\fR defaults to \\fB$%s\\fR, else \\fIedgeblock.yaml\\fR.\n", configEnv)
	fmt.Fprint(w, ".SH COMMANDS\n")
	for _, c := range visible() {
		fs := flagsOf(c)
		fmt.Fprintf(w, ".SS %s\n%s\n.PP\n", roff(c.name), roff(synopsis(c, fs)))
		for p := range strings.SplitSeq(c.desc, "\n\n") {
			fmt.Fprintf(w, "%s\n.PP\n", roff(p))
		}
		if fs != nil {
			fs.VisitAll(func(f *flag.Flag) {
				name, text := flag.UnquoteUsage(f)
				head := "\\fB\\-" + roff(f.Name) + "\\fR"
				if name != "" {
					head += " \\fI" + roff(name) + "\\fR"
				}
				fmt.Fprintf(w, ".TP\n%s\n%s\n", head, roff(text))
			})
		}
		if len(c.examples) > 0 {
			fmt.Fprint(w, ".PP\nExamples:\n.nf\n")
			for _, e := range c.examples {
				fmt.Fprintf(w, "  %s\n", roff(e))
			}
			fmt.Fprint(w, ".fi\n")
		}
		if len(c.exits) > 0 {
			fmt.Fprint(w, ".PP\nExit codes:\n.nf\n")
			for _, e := range c.exits {
				fmt.Fprintf(w, "  %s\n", roff(e))
			}
			fmt.Fprint(w, ".fi\n")
		}
	}
	fmt.Fprint(w, ".SH ENVIRONMENT\n.TP\n.B EDGEBLOCK_CONFIG\nthe default of \\-config.\n.TP\n.B EDGEBLOCK_STATE_DIR\nthe default of \\-state\\-dir.\n.TP\n.B EDGEBLOCK_ADMIN_TOKEN\nthe bearer token sent to the admin listener.\n")
	fmt.Fprint(w, ".SH SEE ALSO\n.B edgeblock help\n.I TOPIC\nfor the reference topics.\n")
	return 0
}

// roff escapes text for a roff line: backslashes, leading dots and
// quotes, and hyphens as minus signs.
func roff(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
