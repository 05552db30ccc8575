//go:build !race

package hub

const raceOn = false
