//go:build !amd64

package features

// prefetch is a no-op where no prefetch instruction is wired up.
func prefetch(addr uintptr) {}
