//go:build !unix

package main

import (
	"context"
	"errors"
	"io"
)

var errChildStatus = errors.New("the command ended with a failure status")

// runRun is `run`, which needs Unix signals and process groups.
func runRun(ctx context.Context, args []string, getenv func(string) string, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return usageError("run: not supported on this system")
}
