package client_test

import (
	"context"
	"errors"
	"log"
	"os"
	"time"

	"github.com/neostore/neostore-secrets/client"
)

// The README's "Go client" section shows this code; keep them the same.
func Example() {
	c, err := client.New("http://127.0.0.1:8200",
		client.WithAPIKey(os.Getenv("NEOSTORE_API_KEY")),
		client.WithCache(client.CacheConfig{
			TTL: 5 * time.Minute,
			OnStale: func(tenant, key string, err error) {
				log.Printf("serving the cached %s/%s: the server failed: %v", tenant, key, err)
			},
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Put(ctx, "demo", "db-password", []byte("s3cr3t"), client.Validity{
		ExpiresOn: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
	}); err != nil {
		log.Fatal(err)
	}
	password, err := c.Get(ctx, "demo", "db-password")
	switch {
	case errors.Is(err, client.ErrNotFound):
		log.Fatal("db-password is not set")
	case err != nil:
		log.Fatal(err) // names the status, title and traceId, never the value
	}
	defer clear(password)
	// ... connect to the database with password
}
