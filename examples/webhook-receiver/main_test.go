package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification's reference
// libraries: this secret signs this message as sig.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = "1614265330"
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestReceiver(t *testing.T) {
	key, err := signingKey(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1614265330, 0)
	for _, c := range []struct {
		name       string
		signatures string
		now        time.Time
		body       string
		want       int
	}{
		{"Valid", specSignature, at, specBody, http.StatusNoContent},
		{"OneOfSeveral", "v1,bm90IGl0 " + specSignature, at, specBody, http.StatusNoContent},
		{"WrongSignature", "v1,bm90IGl0", at, specBody, http.StatusUnauthorized},
		{"OtherVersion", strings.Replace(specSignature, "v1,", "v2,", 1), at, specBody, http.StatusUnauthorized},
		{"AlteredBody", specSignature, at, `{"test": 2432232315}`, http.StatusUnauthorized},
		{"TooOld", specSignature, at.Add(6 * time.Minute), specBody, http.StatusUnauthorized},
		{"FromTheFuture", specSignature, at.Add(-6 * time.Minute), specBody, http.StatusUnauthorized},
		{"NoSignature", "", at, specBody, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			rc := newReceiver(key, &out, func() time.Time { return c.now })
			req := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(c.body))
			req.Header.Set("webhook-id", specID)
			req.Header.Set("webhook-timestamp", specTimestamp)
			req.Header.Set("webhook-signature", c.signatures)
			rec := httptest.NewRecorder()
			rc.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Errorf("status = %d, want %d", rec.Code, c.want)
			}
			if printed := strings.Contains(out.String(), "verified "+specID); printed != (c.want == http.StatusNoContent) {
				t.Errorf("printed %q for status %d", out.String(), rec.Code)
			}
		})
	}
	t.Run("DuplicatePrintedOnce", func(t *testing.T) {
		var out strings.Builder
		rc := newReceiver(key, &out, func() time.Time { return at })
		for range 2 {
			req := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(specBody))
			req.Header.Set("webhook-id", specID)
			req.Header.Set("webhook-timestamp", specTimestamp)
			req.Header.Set("webhook-signature", specSignature)
			rec := httptest.NewRecorder()
			rc.ServeHTTP(rec, req)
			if rec.Code != http.StatusNoContent {
				t.Fatalf("status = %d", rec.Code)
			}
		}
		if n := strings.Count(out.String(), "verified "); n != 1 {
			t.Errorf("a message delivered twice was printed %d times, want once", n)
		}
	})
}
