// Package blocklist parses, normalizes and matches the operator's blocklist,
// and watches files for changes so that a new list can be swapped in while
// the proxy keeps serving.
//
// A List is immutable once built: it is safe for concurrent use by any
// number of goroutines, and a reload builds a new List rather than changing
// the old one. Matching costs at most one hash lookup per label of the host.
//
// The package imports nothing else of edgeblock.
package blocklist
