package proxy

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// GCConfig tunes Go's garbage collector. Needs a restart.
type GCConfig struct {
	// MemoryLimit is the soft memory limit of the Go runtime
	// (runtime/debug.SetMemoryLimit, what GOMEMLIMIT sets): "auto"
	// (default) takes 90% of the container's limit (cgroup v2
	// memory.max, or v1 memory.limit_in_bytes) when there is one, and
	// none otherwise; "off" sets none; or a size in bytes with an optional
	// unit KiB, MiB or GiB ("768MiB"). The GOMEMLIMIT environment
	// variable, when set, wins.
	MemoryLimit string `yaml:"memory_limit"`
	// Percent is GOGC, the heap growth that triggers a collection.
	// Default 0: leave the runtime's (100, or the GOGC environment
	// variable).
	Percent int `yaml:"percent"`
}

// cgroupMemoryFiles are where a container's memory limit is read, cgroup v2
// first.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// parseSize parses a byte count with an optional KiB, MiB or GiB unit.
func parseSize(setting string) (int64, error) {
	s, mult := setting, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: want auto, off, or a positive size such as 768MiB", setting)
	}
	return n * mult, nil
}

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
func (c GCConfig) memoryLimit(files []string) (int64, string) {
	switch c.MemoryLimit {
	case "off":
		return 0, "off"
	case "", "auto":
		if n, f, ok := cgroupMemoryLimit(files); ok {
			return n / 10 * 9, "90% of " + f
		}
		return 0, "auto: no container limit"
	}
	n, _ := parseSize(c.MemoryLimit) // validated
	return n, "gc.memory_limit"
}

// ApplyGC sets the runtime's memory limit and GOGC from cfg, leaving alone
// what the GOMEMLIMIT and GOGC environment variables set, and logs what
// it did.
func ApplyGC(cfg GCConfig, log *slog.Logger) {
	attrs := []any{"event", "gc"}
	if os.Getenv("GOMEMLIMIT") != "" {
		attrs = append(attrs, "memory_limit", "GOMEMLIMIT")
	} else if n, from := cfg.memoryLimit(cgroupMemoryFiles); n > 0 {
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
