package features

// prefetch asks the CPU to start loading the cache line at addr without
// waiting for it (PREFETCHT0). It is only a hint: addr may be any value,
// and nothing is read. ApplyBatch uses it to have the next events'
// customers in cache by the time it applies them.
//
//go:noescape
func prefetch(addr uintptr)
