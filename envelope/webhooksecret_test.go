package envelope

import (
	"bytes"
	"testing"

	"github.com/neostore/neostore-secrets"
)

func TestMaster_SigningSecret(t *testing.T) {
	m := mustMaster(t)
	secret := bytes.Repeat([]byte{0x5a}, 32)
	sealed, err := m.SealSigningSecret("wh_a", secret)
	if err != nil {
		t.Fatalf("SealSigningSecret: %v", err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatalf("the sealed signing secret holds the secret in clear")
	}
	got, err := m.OpenSigningSecret("wh_a", sealed)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("OpenSigningSecret = %x, %v; want %x", got, err, secret)
	}
	t.Run("AnotherSubscription", func(t *testing.T) {
		if _, err := m.OpenSigningSecret("wh_b", sealed); neostore.ErrorCode(err) != neostore.EINTERNAL {
			t.Errorf("opened for another subscription: err = %v, want EINTERNAL", err)
		}
	})
	t.Run("AnotherMasterKey", func(t *testing.T) {
		if _, err := mustMaster(t).OpenSigningSecret("wh_a", sealed); neostore.ErrorCode(err) != neostore.EINTERNAL {
			t.Errorf("opened under another master key: err = %v, want EINTERNAL", err)
		}
	})
	t.Run("NotAnotherPurpose", func(t *testing.T) {
		// The audit key's label must not open a signing secret's ciphertext.
		if _, err := m.UnwrapAuditKey(sealed); err == nil {
			t.Errorf("a signing secret opened as the audit key")
		}
	})
}
