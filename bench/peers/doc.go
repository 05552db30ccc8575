// Package peers holds nothing but its tests: its subdirectories are the
// peer servers that wspush's benchmark runs beside wspush, each serving the
// same protocol (see README.md) with a different WebSocket stack, and
// peers_test.go starts each one and checks that it keeps the contract.
package peers
