package proxy

import "runtime/debug"

// Version returns the module version and VCS revision of this binary, as
// stamped by the linker or recorded by the Go toolchain.
func Version() (version, revision string) {
	version, revision = "devel", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	if BuildVersion != "" {
		version = BuildVersion
	}
	if BuildRevision != "" {
		revision = BuildRevision
	}
	return version, revision
}

// BuildVersion and BuildRevision are set with -ldflags "-X ..." by the
// release build; empty means "ask the Go toolchain's build info".
var (
	BuildVersion  string
	BuildRevision string
)
