package proxy

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/edgeblock/edgeblock/proxy/config"
)

// cgroupMemoryFiles are where a container's memory limit is read, cgroup v2
// first.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// cgroupMemoryLimit returns the memory limit of the first of files that
// holds one; ok is false when none does ("max", or v1's huge "unlimited").
func cgroupMemoryLimit(files []string) (limit int64, file string, ok bool) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0, f, false // "max" or unlimited
		}
		return n, f, true
	}
	return 0, "", false
}

// memoryLimit returns the limit cfg asks for, and where it came from; 0
// means none.
func memoryLimit(c config.GCConfig, files []string) (int64, string) {
	switch c.MemoryLimit {
	case "off":
		return 0, "off"
	case "", "auto":
		if n, f, ok := cgroupMemoryLimit(files); ok {
			return n / 10 * 9, "90% of " + f
		}
		return 0, "auto: no container limit"
	}
	n, _ := config.ParseSize(c.MemoryLimit) // validated
	return n, "gc.memory_limit"
}

// ApplyGC sets the runtime's memory limit and GOGC from cfg, leaving alone
// what the GOMEMLIMIT and GOGC environment variables set, and logs what
// it did.
func ApplyGC(cfg config.GCConfig, log *slog.Logger) {
	attrs := []any{"event", "gc"}
	if os.Getenv("GOMEMLIMIT") != "" {
		attrs = append(attrs, "memory_limit", "GOMEMLIMIT")
	} else if n, from := memoryLimit(cfg, cgroupMemoryFiles); n > 0 {
		debug.SetMemoryLimit(n)
		attrs = append(attrs, "memory_limit_bytes", n, "memory_limit", from)
	} else {
		attrs = append(attrs, "memory_limit", from)
	}
	if cfg.Percent != 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.Percent)
		attrs = append(attrs, "percent", cfg.Percent)
	}
	log.Info("garbage collector settings", attrs...)
}
