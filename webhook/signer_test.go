package webhook

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// The vector every library of the Standard Webhooks repository tests its
// sign function with (libraries/javascript/src/webhook.test.ts "sign
// function works", python test_sign_function, ruby webhook_spec.rb).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vectorKey(t *testing.T) []byte {
	t.Helper()
	key, err := SigningKey([]byte(vectorSecret))
	if err != nil {
		t.Fatalf("SigningKey: %v", err)
	}
	return key
}

func TestSign_SpecVector(t *testing.T) {
	got := Sign(vectorKey(t), vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
	if got != vectorSignature {
		t.Fatalf("Sign = %q, want %q", got, vectorSignature)
	}
}

func TestSign_TamperedBodyIDOrTimestamp(t *testing.T) {
	key := vectorKey(t)
	ts := time.Unix(vectorTimestamp, 0)
	for name, sig := range map[string]string{
		"body":      Sign(key, vectorID, ts, []byte(`{"test": 2432232315}`)),
		"id":        Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJel", ts, []byte(vectorPayload)),
		"timestamp": Sign(key, vectorID, ts.Add(time.Second), []byte(vectorPayload)),
		"key":       Sign(append([]byte{1}, key[1:]...), vectorID, ts, []byte(vectorPayload)),
	} {
		if sig == vectorSignature {
			t.Errorf("tampered %s: signature still %q", name, sig)
		}
	}
}

func TestSigningKey_Padding(t *testing.T) {
	// As the specification's libraries do, a secret's base64 may leave out
	// its padding (python test_signature_verification_with_unpadded_secret).
	padded, err := SigningKey([]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS="))
	if err != nil {
		t.Fatal(err)
	}
	unpadded, err := SigningKey([]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"))
	if err != nil {
		t.Fatal(err)
	}
	if string(padded) != string(unpadded) {
		t.Fatalf("padded and unpadded secrets decode differently")
	}
	for _, bad := range []string{"", "whsec_", "whsec_!!!!"} {
		if _, err := SigningKey([]byte(bad)); err == nil {
			t.Errorf("SigningKey(%q) succeeded", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad[6:]) && len(bad) > 6 {
			t.Errorf("error %q quotes the secret", err)
		}
	}
}

func TestNewSigningSecret(t *testing.T) {
	a, err := NewSigningSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSigningSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	raw, ok := strings.CutPrefix(a, "whsec_")
	if !ok {
		t.Fatalf("secret %q lacks the whsec_ prefix", a)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) != 32 {
		t.Fatalf("secret decodes to %d bytes (%v), want 32", len(key), err)
	}
	if k, _ := SigningKey([]byte(a)); string(k) != string(key) {
		t.Fatal("SigningKey does not return the decoded bytes")
	}
}

func TestSignatureHeader_OnePerSecret(t *testing.T) {
	key := vectorKey(t)
	other := []byte("another key of some thirty-two b")
	ts := time.Unix(vectorTimestamp, 0)
	got := SignatureHeader([][]byte{key, other}, vectorID, ts, []byte(vectorPayload))
	want := vectorSignature + " " + Sign(other, vectorID, ts, []byte(vectorPayload))
	if got != want {
		t.Fatalf("SignatureHeader = %q, want %q", got, want)
	}
}
