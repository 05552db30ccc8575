//go:build race

package hub

// raceOn: sync.Pool drops items at random under the race detector, so
// allocation counts are only checked without it.
const raceOn = true
