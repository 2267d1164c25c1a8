package offline_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/offline"
)

var (
	cred    = []byte("nsk_credential-one")
	binding = offline.Binding{Address: "http://127.0.0.1:8200", Tenant: "demo"}
	planted = []byte("PLANTED-canary-4e1d")
)

func sealed(t *testing.T) []byte {
	t.Helper()
	data, err := offline.Seal(cred, binding, offline.Contents{
		FetchedAt: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		Values:    map[string][]byte{"db-password": planted, "empty": {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSealOpen_RoundTrip(t *testing.T) {
	c, err := offline.Open(cred, binding, sealed(t))
	if err != nil {
		t.Fatal(err)
	}
	if !c.FetchedAt.Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("FetchedAt = %v", c.FetchedAt)
	}
	if !bytes.Equal(c.Values["db-password"], planted) || len(c.Values) != 2 {
		t.Errorf("Values = %q", c.Values)
	}
}

func TestSeal_NoPlaintext(t *testing.T) {
	data := sealed(t)
	for _, needle := range [][]byte{planted, []byte("canary"), []byte("db-password"), cred, []byte("2099")} {
		if bytes.Contains(data, needle) {
			t.Errorf("the snapshot holds %q in clear", needle)
		}
	}
	if bytes.Equal(data, sealed(t)) {
		t.Errorf("two seals of the same contents are identical: salt and nonce are not fresh")
	}
}

func TestOpen_Refuses(t *testing.T) {
	data := sealed(t)
	flip := func(i int) []byte {
		d := bytes.Clone(data)
		d[i] ^= 1
		return d
	}
	for _, tc := range []struct {
		name    string
		cred    []byte
		binding offline.Binding
		data    []byte
		want    error
	}{
		{"OtherCredential", []byte("nsk_credential-two"), binding, data, offline.ErrNoOpen},
		{"NoCredential", nil, binding, data, offline.ErrNoOpen},
		{"OtherTenant", cred, offline.Binding{Address: binding.Address, Tenant: "other"}, data, offline.ErrNoOpen},
		{"OtherAddress", cred, offline.Binding{Address: "http://127.0.0.1:8201", Tenant: "demo"}, data, offline.ErrNoOpen},
		{"AlteredSalt", cred, binding, flip(5), offline.ErrNoOpen},
		{"AlteredNonce", cred, binding, flip(40), offline.ErrNoOpen},
		{"AlteredCiphertext", cred, binding, flip(len(data) - 20), offline.ErrNoOpen},
		{"Truncated", cred, binding, data[:len(data)-1], offline.ErrNoOpen},
		{"OtherVersion", cred, binding, flip(4), offline.ErrNotSnapshot},
		{"NotASnapshot", cred, binding, []byte("DB_PASSWORD=x\n"), offline.ErrNotSnapshot},
		{"Empty", cred, binding, nil, offline.ErrNotSnapshot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := offline.Open(tc.cred, tc.binding, tc.data)
			if !errors.Is(err, tc.want) || c.Values != nil {
				t.Errorf("Open = %v, %v; want %v and no values", c.Values, err, tc.want)
			}
		})
	}
}

func TestSeal_NeedsCredential(t *testing.T) {
	if _, err := offline.Seal(nil, binding, offline.Contents{}); err == nil {
		t.Errorf("Seal without a credential succeeded")
	}
}

func TestDefaultPath(t *testing.T) {
	a := offline.DefaultPath("/cache", binding, "all")
	if a != offline.DefaultPath("/cache", binding, "all") {
		t.Errorf("DefaultPath is not stable")
	}
	for _, other := range []string{
		offline.DefaultPath("/cache", binding, "key:db-password"),
		offline.DefaultPath("/cache", offline.Binding{Address: binding.Address, Tenant: "other"}, "all"),
		offline.DefaultPath("/cache", offline.Binding{Address: "http://other", Tenant: "demo"}, "all"),
	} {
		if other == a {
			t.Errorf("DefaultPath gives %s for different bindings or selections", a)
		}
	}
	if !bytes.HasPrefix([]byte(a), []byte("/cache/neostore-secrets/run/")) || bytes.Contains([]byte(a), []byte("demo")) {
		t.Errorf("DefaultPath = %s", a)
	}
}

// FuzzOpen: arbitrary bytes never panic and never open.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("NSRS\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := offline.Open(cred, binding, data); err == nil {
			t.Fatalf("random data opened")
		}
	})
}
