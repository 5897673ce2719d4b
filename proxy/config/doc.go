// Package config is edgeblock's configuration file: its sections (types.go
// and, beside their checks, balance.go, geo.go, gc.go, headerrules.go),
// decoding with a problem line for every mistake (decode.go, keys.go for
// unknown keys with "did you mean", yamlerrors.go for syntax errors),
// defaults as named constants (defaults.go), and the checks within and
// across sections (validate.go), which report through problems.go.
//
// LoadConfig and ParseConfig return a Config with every default filled in
// and relative paths resolved, or a *ConfigError listing each problem as
// "file:line: field: message". A Config is the file's content: it holds no
// runtime state; what the edge derives from it at load (compiled header
// rules, origin pools, parsed trusted proxies) lives in package proxy.
// Leaf packages own their sections' types and checks (admin.Config,
// fleet.Config, origin's health settings); this package decodes them and
// reports their problems with the file's lines.
//
// The reference of every key is cmd/edgeblock/help/config.md (edgeblock
// help config); a test fails when a key is missing from it.
package config
