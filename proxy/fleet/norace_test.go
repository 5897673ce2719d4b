//go:build !race

package fleet

// raceEnabled is true when the race detector is on: the scale tests skip.
const raceEnabled = false
