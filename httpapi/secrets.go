package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/neostore/neostore-secrets"
)

// What each operation can write its result as, in the order of ASP.NET
// Core MVC's output formatters: the string formatter (text/plain) before
// the JSON formatter (application/json, text/json). A list is not a
// string, so only the JSON formatter can write it.
var (
	valueMediaTypes = []mediaType{textPlain, applicationJSON, textJSON}
	listMediaTypes  = []mediaType{applicationJSON, textJSON}
)

// listFlushBytes is how much of a list is buffered before it is written
// out: one write for a small list, so it still goes out with a
// Content-Length, and a bounded buffer for a large one.
const listFlushBytes = 32 << 10

// handleListSecrets serves GET /api/{tenantId}/secrets (Secret.Read): the
// tenant's key names as a JSON array in ordinal byte order, expired and
// not-yet-valid secrets included. The array is streamed chunk by chunk
// from the store, so a tenant of any size costs one chunk of memory. The
// status goes out with the first 32 KiB; a store failure after that
// aborts the connection, so that no client takes a truncated array for
// the whole one.
func handleListSecrets(out *responder, secrets *neostore.SecretService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant := r.PathValue("tenantId")
		if err := validateTenant(tenant); err != nil {
			out.error(w, r, err)
			return
		}
		contentType := negotiate(r.Header["Accept"], listMediaTypes).contentType()
		bp := out.buffer()
		defer out.release(bp)
		*bp = append(*bp, '[')
		sent, n := false, 0
		var writeErr error
		err := secrets.ListEach(r.Context(), tenant, func(keys []string) error {
			for _, k := range keys {
				if n > 0 {
					*bp = append(*bp, ',')
				}
				n++
				*bp = appendJSONString(*bp, k)
				if len(*bp) < listFlushBytes {
					continue
				}
				if !sent {
					sent = true
					w.Header()["Content-Type"] = contentType
					w.WriteHeader(http.StatusOK)
				}
				if _, writeErr = w.Write(*bp); writeErr != nil {
					return writeErr // the client is gone
				}
				*bp = (*bp)[:0]
			}
			return nil
		})
		switch {
		case err == nil:
			*bp = append(*bp, ']')
			if !sent {
				out.encode(w, http.StatusOK, contentType, *bp)
				return
			}
			_, _ = w.Write(*bp)
		case !sent:
			out.error(w, r, err)
		default:
			if writeErr == nil {
				out.log(r.Context(), slog.LevelError, "list failed after its first part was sent; aborting the response",
					slog.Int("keysListed", n), slog.String("error", err.Error()))
			}
			panic(http.ErrAbortHandler)
		}
	})
}

// handleGetSecret serves GET /api/{tenantId}/secrets/{key} (Secret.Read):
// the value as text/plain, or as a JSON string when the Accept header asks
// for JSON. A key that is absent, outside its validity window or not a
// valid name is 404 alike.
func handleGetSecret(out *responder, secrets *neostore.SecretService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant := r.PathValue("tenantId")
		if err := validateTenant(tenant); err != nil {
			out.error(w, r, err)
			return
		}
		value, err := secrets.Get(r.Context(), tenant, r.PathValue("key"))
		if err != nil {
			out.error(w, r, err)
			return
		}
		mt := negotiate(r.Header["Accept"], valueMediaTypes)
		if mt == textPlain {
			out.encode(w, http.StatusOK, mt.contentType(), value)
			return
		}
		bp := out.buffer()
		*bp = appendJSONString(*bp, value)
		out.encode(w, http.StatusOK, mt.contentType(), *bp)
		out.release(bp)
	})
}

// handlePutSecret serves PUT /api/{tenantId}/secrets/{key} (Secret.Write):
// it stores the value and validity window of the body, replacing both.
func handlePutSecret(out *responder, secrets *neostore.SecretService, limits bodyLimits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, key := r.PathValue("tenantId"), r.PathValue("key")
		if err := validateTenantAndKey(tenant, key); err != nil {
			out.error(w, r, err)
			return
		}
		req, err := decode(w, r, limits)
		if err != nil {
			out.error(w, r, err)
			return
		}
		put, err := neostore.NewSecretPut(tenant, key, req.value, req.validity)
		if err == nil {
			err = checkValueSize(req.value, limits)
		}
		if err != nil {
			out.error(w, r, err)
			return
		}
		change, err := auditWrite(r, http.StatusNoContent)
		if err != nil {
			out.error(w, r, err)
			return
		}
		if err := secrets.Put(r.Context(), put, noticed(r, change)); err != nil {
			out.error(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleDeleteSecret serves DELETE /api/{tenantId}/secrets/{key}
// (Secret.Write): 204 whether or not the secret existed.
func handleDeleteSecret(out *responder, secrets *neostore.SecretService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, key := r.PathValue("tenantId"), r.PathValue("key")
		if err := validateTenantAndKey(tenant, key); err != nil {
			out.error(w, r, err)
			return
		}
		change, err := auditWrite(r, http.StatusNoContent)
		if err != nil {
			out.error(w, r, err)
			return
		}
		if err := secrets.Delete(r.Context(), tenant, key, noticed(r, change)); err != nil {
			out.error(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// noticed returns c asking the store to record the change's webhook event
// with it: a fresh event id and the request's trace id. The service fills
// in the time by its clock, the same instant it stores as UpdatedOn.
func noticed(r *http.Request, c neostore.Change) neostore.Change {
	c.Notice = &neostore.ChangeNotice{EventID: neostore.NewEventID(), TraceID: requestStateFrom(r.Context()).traceID()}
	return c
}

// validateTenant and validateTenantAndKey check the path parameters before
// any body is read or any store is asked, with the errors
// neostore.SecretService gives.
func validateTenant(tenant string) error {
	if !neostore.ValidTenantID(tenant) {
		return neostore.InvalidTenantID("tenantId")
	}
	return nil
}

func validateTenantAndKey(tenant, key string) error {
	if err := validateTenant(tenant); err != nil {
		return err
	}
	if !neostore.ValidKeyName(key) {
		return neostore.InvalidKeyName()
	}
	return nil
}
