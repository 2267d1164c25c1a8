//go:build !linux

package pgtest

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

// Throwaway clusters rely on Linux (parent-death signal, /proc); elsewhere
// the tests need NEOSTORE_TEST_POSTGRES_URL.
var errUnsupported = fmt.Errorf("%w: pgtest starts throwaway clusters only on Linux; set %s", errNoBinaries, EnvURL)

var stopSignals []syscall.Signal

func lockThread() {}

func sysProcAttr(*account, bool) *syscall.SysProcAttr { return nil }

func signalProcess(int, syscall.Signal) error { return errUnsupported }

func runAsAccount() (*account, error) { return nil, errUnsupported }

func suspend(int, bool) error { return errors.New("freeze needs Linux, not " + runtime.GOOS) }

func sweepOrphans() {}
