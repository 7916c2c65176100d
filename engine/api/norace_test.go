//go:build !race

package api

// raceEnabled says the race detector is on: sync.Pool then drops a
// quarter of what is put back, so pooled objects are sometimes made anew.
const raceEnabled = false
