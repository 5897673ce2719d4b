//go:build race

package proxy

// raceEnabled is true when the race detector is on; it caps live
// goroutines at 8128, so load tests scale down.
const raceEnabled = true
