package models

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time of the calling OS thread (the caller locks
// its goroutine to the thread). Benchmarks report it next to wall time
// because the benchmark machine is shared: time spent descheduled counts
// in ns/op but not here.
func threadCPU() (time.Duration, bool) {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
