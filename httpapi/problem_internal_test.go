package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets"
)

// TestResponder_ErrorStatus: every code is answered with the status
// neostore.HTTPStatus gives it; ECONFLICT was once answered 500.
func TestResponder_ErrorStatus(t *testing.T) {
	out := newResponder(slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		code  string
		want  int
		title string
	}{
		{neostore.ECONFLICT, http.StatusConflict, `"title":"Conflict"`},
		{neostore.EFORBIDDEN, http.StatusForbidden, `"title":"Forbidden"`},
		{neostore.EUNAVAILABLE, http.StatusServiceUnavailable, `"title":"Service Unavailable"`},
		{neostore.EINTERNAL, http.StatusInternalServerError, `"status":500`},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPut, "/api/t/secrets/k", nil)
		out.error(w, r, neostore.Errorf(tc.code, "A message."))
		if w.Code != tc.want {
			t.Errorf("%s: status = %d, want %d", tc.code, w.Code, tc.want)
		}
		if body := w.Body.String(); !strings.Contains(body, tc.title) {
			t.Errorf("%s: body %s lacks %s", tc.code, body, tc.title)
		}
	}
}
