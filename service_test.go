package neostore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

// resealingStore returns the ciphertexts of reads in turn, as a store does
// while a key rotation reseals the value between two reads.
type resealingStore struct {
	neostore.SecretStore
	reads []string
	n     int
}

func (s *resealingStore) GetSecret(context.Context, string, string) (neostore.SealedSecret, error) {
	c := s.reads[min(s.n, len(s.reads)-1)]
	s.n++
	return neostore.SealedSecret{Ciphertext: []byte(c)}, nil
}

// droppedKeySealer opens only ciphertexts sealed under the new data key:
// the old one was dropped by the rotation.
type droppedKeySealer struct{ neostore.Sealer }

func (droppedKeySealer) Open(_ context.Context, _, _ string, c []byte) ([]byte, error) {
	if string(c) == "new:value" {
		return []byte("value"), nil
	}
	return nil, errors.New("decryption failed")
}

func TestSecretService_GetDuringARotation(t *testing.T) {
	t.Run("AValueResealedBetweenReadAndOpenIsReadAgain", func(t *testing.T) {
		store := &resealingStore{reads: []string{"old:value", "new:value"}}
		svc := neostore.NewSecretService(store, droppedKeySealer{}, time.Now)
		got, err := svc.Get(t.Context(), "acme", "k")
		if err != nil || string(got) != "value" {
			t.Errorf("Get = %q, %v; want the value, read again after the reseal", got, err)
		}
	})
	t.Run("AnUnchangedCiphertextStillFails", func(t *testing.T) {
		store := &resealingStore{reads: []string{"tampered"}}
		svc := neostore.NewSecretService(store, droppedKeySealer{}, time.Now)
		if _, err := svc.Get(t.Context(), "acme", "k"); err == nil {
			t.Error("Get opened a ciphertext that opens under no key")
		}
		if store.n != 2 {
			t.Errorf("%d reads, want 2 (one retry)", store.n)
		}
	})
}
