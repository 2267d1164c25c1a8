//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/neostore/neostore-secrets/client"
	"github.com/neostore/neostore-secrets/offline"
)

// selection is which secrets `run` reads.
type selection struct {
	keys []string // named by --key or --env
	all  bool     // and every key the tenant lists
}

// String is the selection as it names a default snapshot file.
func (s selection) String() string {
	keys := slices.Sorted(slices.Values(s.keys))
	keys = slices.Compact(keys)
	if s.all {
		return "all:" + strings.Join(keys, ",")
	}
	return "keys:" + strings.Join(keys, ",")
}

// secretReader is what `run` needs of the client.
type secretReader interface {
	Get(ctx context.Context, tenant, key string) ([]byte, error)
	List(ctx context.Context, tenant string) ([]string, error)
}

// fetchSecrets reads the selected secrets of tenant, at most parallel at a
// time, and returns key → value. With --all, a listed key that is not
// served (outside its validity window, or deleted since the list) is
// left out and named in skipped; a key asked for by name must be served.
// The first failure cancels the other reads.
func fetchSecrets(ctx context.Context, c secretReader, tenant string, sel selection, parallel int) (values map[string][]byte, skipped []string, err error) {
	wanted := make(map[string]bool) // key → asked for by name
	for _, k := range sel.keys {
		wanted[k] = true
	}
	if sel.all {
		listed, err := c.List(ctx, tenant)
		if err != nil {
			return nil, nil, err
		}
		for _, k := range listed {
			if !wanted[k] {
				wanted[k] = false
			}
		}
	}
	keys := slices.Sorted(maps.Keys(wanted))
	got := make([][]byte, len(keys))
	missing := make([]bool, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, k := range keys {
		g.Go(func() error {
			v, err := c.Get(gctx, tenant, k)
			if err != nil && !wanted[k] && errors.Is(err, client.ErrNotFound) {
				missing[i] = true
				return nil
			}
			got[i] = v
			return err
		})
	}
	if err := g.Wait(); err != nil {
		for _, v := range got {
			clear(v)
		}
		return nil, nil, err
	}
	values = make(map[string][]byte, len(keys))
	for i, k := range keys {
		if missing[i] {
			skipped = append(skipped, k)
			continue
		}
		values[k] = got[i]
	}
	return values, skipped, nil
}

// fallback is the offline snapshot of one `run`: where it lives, what it
// is bound to and the credential that seals it.
type fallback struct {
	path       string
	binding    offline.Binding
	credential []byte
	maxAge     time.Duration
	now        func() time.Time
}

// store seals values, fetched at, into the snapshot file: mode 0600 in a
// directory of mode 0700, replaced atomically.
func (f *fallback) store(values map[string][]byte, at time.Time) error {
	data, err := offline.Seal(f.credential, f.binding, offline.Contents{FetchedAt: at, Values: values})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return err
	}
	_, err = writeFileAtomic(f.path, func(w io.Writer) (int64, error) {
		n, err := w.Write(data)
		return int64(n), err
	})
	return err
}

// load returns the snapshot's values when it opens and is younger than
// maxAge, and otherwise an error that says why not.
func (f *fallback) load(sel selection) (map[string][]byte, time.Time, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, fmt.Errorf("no snapshot at %s", f.path)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("snapshot: %w", err)
	}
	c, err := offline.Open(f.credential, f.binding, data)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("the snapshot at %s does not open with this credential, address and tenant", f.path)
	}
	if age := f.now().Sub(c.FetchedAt); age > f.maxAge {
		return nil, time.Time{}, fmt.Errorf("the snapshot at %s is %s old, older than --fallback-max-age %s", f.path, age.Round(time.Second), f.maxAge)
	}
	for _, k := range sel.keys {
		if _, ok := c.Values[k]; !ok {
			return nil, time.Time{}, fmt.Errorf("the snapshot at %s does not hold %q", f.path, k)
		}
	}
	return c.Values, c.FetchedAt, nil
}

// forget removes the snapshot: its credential was refused, and a revoked
// credential must not keep working offline.
func (f *fallback) forget() {
	os.Remove(f.path)
}
