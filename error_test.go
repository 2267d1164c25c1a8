package neostore_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/neostore/neostore-secrets"
)

// TestHTTPStatus holds the one mapping to the statuses error.go documents
// for each code.
func TestHTTPStatus(t *testing.T) {
	for code, want := range map[string]int{
		neostore.EINVALID:          http.StatusBadRequest,
		neostore.EUNAUTHENTICATED:  http.StatusUnauthorized,
		neostore.EFORBIDDEN:        http.StatusForbidden,
		neostore.ENOTFOUND:         http.StatusNotFound,
		neostore.ECONFLICT:         http.StatusConflict,
		neostore.ETOOLARGE:         http.StatusRequestEntityTooLarge,
		neostore.EUNSUPPORTEDMEDIA: http.StatusUnsupportedMediaType,
		neostore.EUNAVAILABLE:      http.StatusServiceUnavailable,
		neostore.EINTERNAL:         http.StatusInternalServerError,
		"no-such-code":             http.StatusInternalServerError,
	} {
		if got := neostore.HTTPStatus(code); got != want {
			t.Errorf("HTTPStatus(%q) = %d, want %d", code, got, want)
		}
		if code == "no-such-code" {
			continue
		}
		if got := neostore.CodeOfStatus(want); got != code {
			t.Errorf("CodeOfStatus(%d) = %q, want %q", want, got, code)
		}
	}
	if got := neostore.CodeOfStatus(http.StatusTeapot); got != "" {
		t.Errorf("CodeOfStatus(418) = %q, want empty", got)
	}
}

func TestProblemOf(t *testing.T) {
	t.Run("DomainError", func(t *testing.T) {
		p := neostore.ProblemOf(neostore.FieldError("key", "bad key"))
		if p.Status != http.StatusBadRequest || p.Code != neostore.EINVALID || p.Message != "bad key" || p.Fields["key"][0] != "bad key" {
			t.Errorf("ProblemOf = %+v", p)
		}
	})
	t.Run("OtherErrorLeaksNothing", func(t *testing.T) {
		p := neostore.ProblemOf(errors.New("open /secret/path: permission denied"))
		want := neostore.Problem{Status: http.StatusInternalServerError, Code: neostore.EINTERNAL, Message: "Internal error."}
		if p.Status != want.Status || p.Code != want.Code || p.Message != want.Message || p.Fields != nil {
			t.Errorf("ProblemOf = %+v, want %+v", p, want)
		}
	})
}
