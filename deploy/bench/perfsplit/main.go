// Command perfsplit splits a server's CPU per request into parts, from
// the call stacks of a perf recording of the process under load:
//
//	perf script -i tree-h1.data -F ip,sym | go run ./deploy/bench/perfsplit -cpu 51.8
//
// -cpu is the process's CPU time per request over the recorded run (cpu.sh
// prints it; BENCH_PERF there records the first round of each case). Each
// sample goes to the first part that claims it, in this order: the
// garbage collector, the scheduler, stack growth, TLS in user space,
// system calls (the kernel's socket reads and writes, whoever called
// them), the handler's own code (edgeblock's packages, or bare's main;
// net/http's response writing below it counts as net/http's), net/http
// writing the response, net/http reading the request, the rest of
// net/http, and other. With -own, the handler's own part is listed by its
// innermost function of ours and what that called.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"sort"
	"strings"
)

var parts = []struct {
	name string
	any  []string // a sample whose stack has any of these frames
}{
	{"garbage collector", []string{"runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge", "runtime.gcAssistAlloc", "runtime.markroot", "gcDrain"}},
	{"scheduler", []string{"runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.sysmon", "runtime.mstart", "runtime.goexit0", "runtime.wakep"}},
	{"stack growth", []string{"runtime.morestack"}},
}

// writing are net/http's response writing functions.
var writing = []string{"net/http.(*response).Write", "net/http.(*response).WriteHeader", "net/http.(*chunkWriter)",
	"net/http.(*response).FlushError", "http2responseWriter", "net/http.Header.write"}

func has(stack []string, keys []string) bool {
	for _, f := range stack {
		for _, k := range keys {
			if strings.Contains(f, k) {
				return true
			}
		}
	}
	return false
}

func ours(f string) bool {
	return strings.Contains(f, "edgeblock/edgeblock/") || strings.HasPrefix(f, "main.")
}

// part names the part a stack (leaf first) belongs to, and for the
// handler's own part its innermost frame of ours and that frame's callee.
func part(s []string) (string, string) {
	for _, p := range parts {
		if has(s, p.any) {
			return p.name, ""
		}
	}
	syscall := has(s, []string{"Syscall6"})
	switch {
	case has(s, []string{"crypto/"}) && !syscall:
		return "TLS (user space)", ""
	case syscall:
		return "kernel: socket reads and writes", ""
	}
	for i, f := range s {
		if ours(f) {
			callee := "(self)"
			if i > 0 {
				callee = s[i-1]
			}
			return "handler: our own code", strings.TrimPrefix(f, "github.com/edgeblock/edgeblock/") + " <- " + callee
		}
		if has([]string{f}, writing) {
			return "net/http: writing the response", ""
		}
	}
	switch {
	case has(s, []string{"net/http.(*conn).readRequest", "processHeaders", "readFrames", "newWriterAndRequest", "hpack"}):
		return "net/http: reading the request", ""
	case has(s, []string{"net/http.", "bufio."}):
		return "net/http: the rest", ""
	}
	return "other", ""
}

func main() {
	cpu := flag.Float64("cpu", 0, "the process's CPU `microseconds` per request over the recorded run")
	own := flag.Bool("own", false, "list the handler's own part by function")
	flag.Parse()
	if *cpu <= 0 {
		log.Fatal("perfsplit: -cpu is required (cpu.sh prints it)")
	}
	byPart, byFunc := map[string]int{}, map[string]int{}
	total := 0
	add := func(stack []string) {
		if len(stack) == 0 {
			return
		}
		total++
		p, f := part(stack)
		byPart[p]++
		if f != "" {
			byFunc[f]++
		}
	}
	var stack []string
	r := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimSpace(line)
		if line == "" {
			add(stack)
			stack = stack[:0]
		} else if _, sym, ok := strings.Cut(line, " "); ok {
			stack = append(stack, strings.TrimSpace(sym))
		}
		if err == io.EOF {
			add(stack)
			break
		} else if err != nil {
			log.Fatal(err)
		}
	}
	if total == 0 {
		log.Fatal("perfsplit: no samples on standard input (perf script -F ip,sym)")
	}
	print := func(m map[string]int, limit int) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
		for i, k := range keys {
			if i == limit {
				break
			}
			fmt.Printf("%7.2f µs  %5.1f%%  %s\n", *cpu*float64(m[k])/float64(total), 100*float64(m[k])/float64(total), k)
		}
	}
	fmt.Printf("%d samples, %.1f µs per request\n", total, *cpu)
	print(byPart, -1)
	if *own {
		fmt.Println("handler: our own code, by function:")
		print(byFunc, 30)
	}
}
