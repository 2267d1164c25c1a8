package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/envelope"
)

// reloadMasterOnSIGHUP re-reads the master key file on SIGHUP, until ctx is
// done; wg tracks the goroutine. It is what `keys reload --data DIR` does
// through the admin socket, for operators who signal instead (systemctl
// reload). A keyset that does not fit the store is refused and the one in
// use is kept (see envelope.Rotator.ReloadMaster). The handler is
// registered before it returns, so a SIGHUP sent once the server is ready
// never meets the default action.
func reloadMasterOnSIGHUP(ctx context.Context, wg *sync.WaitGroup, master *envelope.Master, keys neostore.KeyManager, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Go(func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if master.Path() == "" {
					logger.Info("SIGHUP: the master key did not come from a file; not reloaded")
					continue
				}
				list, err := keys.ReloadMaster(ctx)
				if err != nil {
					logger.Error("SIGHUP: master key file not reloaded; the keyset in use is kept", "reason", neostore.ErrorMessage(err), "err", err)
					continue
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
	})
}
