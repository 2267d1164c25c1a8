package main

import (
	"errors"
	"math"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryLimitRatio is the share of the container's memory the Go heap may
// grow to before the collector works harder; the rest covers stacks,
// bbolt's page cache and what the runtime does not count.
const memoryLimitRatio = 0.9

// setMemoryLimit gives the Go runtime a soft memory limit that fits the
// container, so that a lenient GOGC (serve sets 400) cannot hold garbage
// until the kernel kills the process: GOMEMLIMIT when it is set (the
// runtime has read it already), else 90% of what provider reports (the
// cgroup's memory.max or memory.limit_in_bytes), else none. AUTOMEMLIMIT
// (a ratio, or "off") overrides the 90%. It returns the limit in force,
// math.MaxInt64 for none, and where it came from.
func setMemoryLimit(getenv func(string) string, provider memlimit.Provider) (limit int64, source string, err error) {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT", nil
	}
	if getenv("AUTOMEMLIMIT") == "off" {
		return debug.SetMemoryLimit(-1), "AUTOMEMLIMIT=off", nil
	}
	limit, err = memlimit.Set(memlimit.WithProvider(provider), memlimit.WithRatio(memoryLimitRatio))
	switch {
	case err != nil && !errors.Is(err, memlimit.ErrNoLimit):
		return limit, "none", err
	case limit == math.MaxInt64:
		return limit, "none", nil
	}
	return limit, "cgroup", nil
}
