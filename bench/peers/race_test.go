//go:build race

package peers_test

func init() { raceEnabled = true }
