package main

import (
	"context"
	"fmt"
	"io"

	"github.com/neostore/neostore-secrets/envelope"
)

func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "init" {
		return usageError("keys: want `keys init --out FILE`")
	}
	fs := newFlagSet("keys init", stderr)
	out := fs.String("out", "", "file to write the new master keyset to (mode 0600; never overwritten)")
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	if *out == "" {
		return usageError("keys init: --out is required")
	}
	keyset, err := envelope.NewMasterKeyset()
	if err != nil {
		return err
	}
	if err := envelope.WriteMasterFile(*out, keyset); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote a new master keyset to %s (mode 0600). Keep it apart from the data and its backups: without it no secret can be read.\n", *out)
	return nil
}
