package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/neostore/neostore-secrets/webhooktest"
)

// runReceiver is `seed receiver`: a webhook endpoint for WEBHOOK_AB=1 that
// verifies every delivery as the Standard Webhooks specification says
// (webhooktest.Verify), answers 204, and counts; GET /stats prints the
// counts. Unlike webhooktest.Receiver it keeps no bodies: a benchmark
// delivers hundreds of thousands.
func runReceiver(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("listen", "127.0.0.1:0", "address to listen on")
	secretFile := fs.String("secret-file", "", "file holding the subscription's signing secret (whsec_...)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*secretFile)
	if err != nil {
		return fmt.Errorf("receiver: read -secret-file: %w", err)
	}
	key, err := webhooktest.DecodeSecret(strings.TrimSpace(string(raw)))
	if err != nil {
		return err
	}
	keys := [][]byte{key}
	var mu sync.Mutex
	var attempts, invalid, duplicates int
	seen := map[string]bool{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		id := r.Header.Get("webhook-id")
		_, verr := webhooktest.Verify(keys, id, r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body, time.Now(), webhooktest.DefaultTolerance)
		mu.Lock()
		attempts++
		switch {
		case verr != nil:
			invalid++
		case seen[id]:
			duplicates++
		default:
			seen[id] = true
		}
		mu.Unlock()
		if verr != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "attempts=%d delivered=%d duplicates=%d invalid=%d\n", attempts, len(seen), duplicates, invalid)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "receiver listening on %s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// runDrain is `seed drain`: it polls a receiver's /stats until it has
// delivered at least -want events and prints how many were still to come
// at the first look and how long the rest took: how far deliveries lag
// behind a write load.
func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stats := fs.String("url", "", "the receiver's /stats URL")
	want := fs.Int("want", 0, "events delivered to wait for")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	first := -1
	for {
		got, line, err := deliveredCount(ctx, client, *stats)
		if err != nil {
			return err
		}
		if first < 0 {
			first = max(*want-got, 0)
		}
		if got >= *want {
			fmt.Fprintf(stdout, "pending_at_end=%d drain_ms=%d %s\n", first, time.Since(start).Milliseconds(), line)
			return nil
		}
		if time.Since(start) > *timeout {
			return fmt.Errorf("drain: %d of %d delivered after %s", got, *want, *timeout)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func deliveredCount(ctx context.Context, client *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	line := strings.TrimSpace(string(b))
	var attempts, delivered int
	if _, err := fmt.Sscanf(line, "attempts=%d delivered=%d", &attempts, &delivered); err != nil {
		return 0, "", fmt.Errorf("drain: unexpected /stats %q", line)
	}
	return delivered, line, nil
}
