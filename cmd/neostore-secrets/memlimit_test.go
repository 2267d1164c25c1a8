package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func TestSetMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // memlimit.Set reads the process's environment too
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	tests := []struct {
		name       string
		env        map[string]string
		provider   memlimit.Provider
		want       int64
		wantSource string
	}{
		{"NinetyPercentOfTheCgroup", nil, memlimit.Limit(1000 << 20), 900 << 20, "cgroup"},
		{"NoCgroupLimit", nil, func() (uint64, error) { return 0, memlimit.ErrNoLimit }, math.MaxInt64, "none"},
		{"GOMEMLIMITWins", map[string]string{"GOMEMLIMIT": "123MiB"}, memlimit.Limit(1000 << 20), 77 << 20, "GOMEMLIMIT"},
		{"Off", map[string]string{"AUTOMEMLIMIT": "off"}, memlimit.Limit(1000 << 20), 77 << 20, "AUTOMEMLIMIT=off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The limit the runtime has when the environment is left alone:
			// in the process it would be GOMEMLIMIT's, read at start.
			debug.SetMemoryLimit(77 << 20)
			got, source, err := setMemoryLimit(env(tt.env), tt.provider)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || source != tt.wantSource {
				t.Errorf("setMemoryLimit = %d, %q; want %d, %q", got, source, tt.want, tt.wantSource)
			}
			if inForce := debug.SetMemoryLimit(-1); inForce != tt.want {
				t.Errorf("the runtime's limit is %d, want %d", inForce, tt.want)
			}
		})
	}
}
