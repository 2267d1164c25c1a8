package bolt_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/webhook"
	"github.com/neostore/neostore-secrets/webhooktest"
)

// BenchmarkPutWithWebhooks is issue 14's cost of the outbox on the
// embedded store, at the store's level (no HTTP, no sealing): parallel
// PUTs that ask for their event (Change.Notice, as the Secret API's do)
// with no subscription, with one that covers the tenant (the event is
// written in the PUT's transaction and stays in the outbox), and with one
// whose dispatcher delivers to a loopback receiver meanwhile. Run the three
// alternating, so that the machine's drift hits them alike (-count repeats
// each sub-benchmark in a row, a loop does not):
//
//	for i in 1 2 3; do go test -run '^$' -bench PutWithWebhooks -benchtime 2s ./bolt/; done
func BenchmarkPutWithWebhooks(b *testing.B) {
	sealed := neostore.SealedSecret{Ciphertext: make([]byte, 128)}
	subscribe := func(b *testing.B, s neostore.Store, url string) {
		err := s.CreateWebhook(b.Context(), neostore.WebhookSubscription{
			ID: "wh_bench", Tenant: "tenant", URL: url,
			Secrets:   []neostore.WebhookSecret{{Sealed: []byte("unused: the opener below has the secret")}},
			CreatedAt: time.Now().Add(-time.Minute),
		})
		if err != nil {
			b.Fatalf("CreateWebhook: %v", err)
		}
	}
	put := func(b *testing.B, s neostore.Store) {
		ctx := b.Context()
		var n atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				c := neostore.Change{Notice: &neostore.ChangeNotice{EventID: "msg_bench" + strconv.FormatInt(i, 10), At: time.Now()}}
				if err := s.PutSecret(ctx, "tenant", "key-"+strconv.FormatInt(i, 10), sealed, c); err != nil {
					b.Errorf("PutSecret: %v", err)
					return
				}
			}
		})
	}

	b.Run("NoSubscription", func(b *testing.B) {
		put(b, mustOpen(b))
	})
	b.Run("OneSubscriptionRecorded", func(b *testing.B) {
		s := mustOpen(b)
		subscribe(b, s, "http://127.0.0.1:9/unused")
		put(b, s)
	})
	b.Run("OneSubscriptionDelivering", func(b *testing.B) {
		s := mustOpen(b)
		secret := "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		rcv, err := webhooktest.Start(webhooktest.Options{Secrets: []string{secret}})
		if err != nil {
			b.Fatal(err)
		}
		defer rcv.Close()
		subscribe(b, s, rcv.URL)
		d := webhook.New(webhook.Options{Store: s, Opener: fixedOpener(secret), AllowPrivate: true, AllowInsecure: true})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		put(b, s)
		b.StopTimer()
		pending, _, err := s.PendingDeliveries(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		outbox, err := s.OutboxEvents(context.Background(), 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(pending+len(outbox)), "undelivered-at-end")
		cancel()
		<-done
		if s := webhooktest.Summarize(rcv.Requests()); s.Invalid != 0 {
			b.Errorf("receiver: %+v", s)
		}
	})
}

// fixedOpener hands the dispatcher one signing secret for every
// subscription.
type fixedOpener string

func (o fixedOpener) OpenSigningSecret(string, []byte) ([]byte, error) { return []byte(o), nil }
