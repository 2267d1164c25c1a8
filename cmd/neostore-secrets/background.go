package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// every runs fn every interval until ctx is done; wg tracks the goroutine.
// It is the shape of every periodic job of serve: last-use bookkeeping,
// API-key reloads, rate-limit sweeps.
func every(ctx context.Context, wg *sync.WaitGroup, interval time.Duration, fn func(context.Context)) {
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(ctx)
			}
		}
	})
}

// onSIGHUP runs the handlers, in order, on every SIGHUP until ctx is done;
// wg tracks the goroutine. SIGHUP is what `systemctl reload` sends: it
// reloads the TLS certificate and the master key file. The signal is
// caught before onSIGHUP returns, so a SIGHUP sent once the server is
// ready never meets the default action (which would end the process).
func onSIGHUP(ctx context.Context, wg *sync.WaitGroup, handlers ...func(context.Context)) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Go(func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				for _, h := range handlers {
					h(ctx)
				}
			}
		}
	})
}
