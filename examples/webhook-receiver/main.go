// Command webhook-receiver is an example receiver of neostore-secrets'
// webhook notifications. It verifies every message as the Standard Webhooks
// specification says (https://www.standardwebhooks.com), with the standard
// library only, and prints each verified event on a line of stdout:
//
//	verified msg_... {"type":"secret.updated",...}
//
// It reads the endpoint's signing secret (whsec_..., printed once by
// `neostore-secrets webhook add`) from the environment variable
// WEBHOOK_SECRET, never from its command line, where other users of the
// machine could read it.
//
//	WEBHOOK_SECRET=whsec_... go run ./examples/webhook-receiver --listen 127.0.0.1:9000
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tolerance is how far a message's timestamp may lie from the receiver's
// clock: older messages are refused, so that a captured one cannot be
// replayed later.
const tolerance = 5 * time.Minute

// maxBody bounds what one message may send.
const maxBody = 1 << 20

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to receive webhooks on")
	flag.Parse()
	secret, err := signingKey(os.Getenv("WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: newReceiver(secret, os.Stdout, time.Now), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	// The line a script (or a test) waits for before it sends anything.
	fmt.Fprintf(os.Stderr, "listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// signingKey returns the HMAC key of a signing secret: the base64 after
// "whsec_".
func signingKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("set WEBHOOK_SECRET to the endpoint's signing secret (whsec_..., from `neostore-secrets webhook add`)")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return nil, errors.New("WEBHOOK_SECRET is not whsec_ followed by base64")
	}
	return key, nil
}

// receiver verifies messages and prints the verified ones, once each.
type receiver struct {
	key []byte
	now func() time.Time

	mu   sync.Mutex
	out  io.Writer
	seen map[string]bool // webhook-id of every message printed: delivery is at least once
}

func newReceiver(key []byte, out io.Writer, now func() time.Time) *receiver {
	return &receiver{key: key, out: out, now: now, seen: map[string]bool{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	id := r.Header.Get("webhook-id")
	if err := rc.verify(id, r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !rc.seen[id] { // a retry of a message already handled is acknowledged, not handled again
		rc.seen[id] = true
		fmt.Fprintf(rc.out, "verified %s %s\n", id, bytes.TrimSpace(body))
	}
	w.WriteHeader(http.StatusNoContent)
}

// verify checks a message's signature header against the HMAC-SHA256 of
// "id.timestamp.body", and its timestamp against the tolerance. The header
// may carry several space-separated signatures (during a secret rotation
// one per secret): one that matches is enough.
func (rc *receiver) verify(id, timestamp, signatures string, body []byte) error {
	if id == "" || timestamp == "" || signatures == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("bad webhook-timestamp")
	}
	if d := rc.now().Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook-timestamp too far from now")
	}
	mac := hmac.New(sha256.New, rc.key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(signatures) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) { // constant time
			return nil
		}
	}
	return errors.New("no valid signature")
}
