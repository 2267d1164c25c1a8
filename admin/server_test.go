package admin_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/admin"
)

// TestNewHandler_ErrorStatus: the admin socket answers each error code with
// the status the API gives it (neostore.HTTPStatus); forbidden and
// unauthenticated were once answered 500.
func TestNewHandler_ErrorStatus(t *testing.T) {
	for _, code := range []string{neostore.EINVALID, neostore.EUNAUTHENTICATED, neostore.EFORBIDDEN, neostore.ENOTFOUND, neostore.ECONFLICT, neostore.EUNAVAILABLE, neostore.EINTERNAL} {
		keys := &keyManager{err: neostore.Errorf(code, "A message.")}
		h := admin.NewHandler(nil, nil, keys, nil, slog.New(slog.DiscardHandler))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/keys/master", nil))
		if want := neostore.HTTPStatus(code); w.Code != want {
			t.Errorf("%s: status = %d, want %d", code, w.Code, want)
		}
	}
}
