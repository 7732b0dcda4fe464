//go:build race

package notify

// raceEnabled: the race detector changes allocation counts.
const raceEnabled = true
