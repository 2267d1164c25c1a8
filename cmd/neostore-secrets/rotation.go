package main

import (
	"context"
	"log/slog"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/envelope"
)

// reloadMaster returns the SIGHUP handler that re-reads the master key
// file: what `keys reload --data DIR` does through the admin socket, for
// operators who signal instead (systemctl reload). A keyset that does not
// fit the store is refused and the one in use is kept (see
// envelope.Rotator.ReloadMaster).
func reloadMaster(master *envelope.Master, keys neostore.KeyManager, logger *slog.Logger) func(context.Context) {
	return func(ctx context.Context) {
		if master.Path() == "" {
			logger.Info("SIGHUP: the master key did not come from a file; not reloaded")
			return
		}
		list, err := keys.ReloadMaster(ctx)
		if err != nil {
			logger.Error("SIGHUP: master key file not reloaded; the keyset in use is kept", "reason", neostore.ErrorMessage(err), "err", err)
			return
		}
		var primary uint32
		for _, k := range list {
			if k.Primary {
				primary = k.ID
			}
		}
		logger.Info("SIGHUP: master keyset reloaded", "keys", len(list), "primary", primary)
	}
}
