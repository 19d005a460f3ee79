//go:build unix

package bench

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user plus system) that this process has used:
// the API server, etcd, the scheduler and the harness all run in it.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
