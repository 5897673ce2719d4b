package config

import (
	"fmt"
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

// parseSize parses a byte count with an optional KiB, MiB or GiB unit.
func ParseSize(setting string) (int64, error) {
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
