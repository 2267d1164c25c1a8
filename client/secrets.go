package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"
)

// maxAnswerBytes bounds the body the client reads from one answer.
const maxAnswerBytes = 32 << 20

// Validity is a secret's window; a zero time means unbounded on that side.
type Validity struct{ NotBefore, ExpiresOn time.Time }

// Get returns the raw value of the secret key of tenant (asked for as
// text/plain). It returns an error matching ErrNotFound when the secret is
// absent or outside its validity window. With WithCache, a fresh cached
// value is returned without asking the server.
func (c *Client) Get(ctx context.Context, tenant, key string) ([]byte, error) {
	if err := checkNames("get", tenant, key); err != nil {
		return nil, err
	}
	if c.cache != nil {
		return c.cache.get(ctx, tenant, key, c.fetch)
	}
	return c.fetch(ctx, tenant, key)
}

// fetch is Get without the cache.
func (c *Client) fetch(ctx context.Context, tenant, key string) ([]byte, error) {
	return c.do(ctx, "get", http.MethodGet, secretPath(tenant, key), "text/plain", nil, http.StatusOK)
}

// Put stores value under key for tenant with the validity window v,
// replacing the secret's value and window. The value must be valid UTF-8
// (the API carries it as a JSON string).
func (c *Client) Put(ctx context.Context, tenant, key string, value []byte, v Validity) error {
	if err := checkNames("put", tenant, key); err != nil {
		return err
	}
	if !utf8.Valid(value) {
		return fmt.Errorf("neostore: put: the value is not valid UTF-8: %w", ErrInvalid)
	}
	if !v.NotBefore.IsZero() && !v.ExpiresOn.IsZero() && !v.ExpiresOn.After(v.NotBefore) {
		return fmt.Errorf("neostore: put: expiresOn must be after notBefore: %w", ErrInvalid)
	}
	type window struct {
		NotBefore string `json:"notBefore,omitempty"`
		ExpiresOn string `json:"expiresOn,omitempty"`
	}
	req := struct {
		Value   string  `json:"value"`
		Options *window `json:"options,omitempty"`
	}{Value: string(value)}
	if !v.NotBefore.IsZero() || !v.ExpiresOn.IsZero() {
		req.Options = &window{NotBefore: rfc3339(v.NotBefore), ExpiresOn: rfc3339(v.ExpiresOn)}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("neostore: put: encoding the request: %w", err)
	}
	defer clear(body) // best effort: the value leaves no copy in this buffer
	if c.cache != nil {
		defer c.cache.forget(tenant, key)
	}
	_, err = c.do(ctx, "put", http.MethodPut, secretPath(tenant, key), "", body, http.StatusNoContent)
	return err
}

// Delete removes the secret key of tenant. Deleting a secret that does not
// exist is not an error.
func (c *Client) Delete(ctx context.Context, tenant, key string) error {
	if err := checkNames("delete", tenant, key); err != nil {
		return err
	}
	if c.cache != nil {
		defer c.cache.forget(tenant, key)
	}
	_, err := c.do(ctx, "delete", http.MethodDelete, secretPath(tenant, key), "", nil, http.StatusNoContent)
	return err
}

// List returns the key names of tenant's secrets in byte order, expired and
// not-yet-valid ones included. It never returns values.
func (c *Client) List(ctx context.Context, tenant string) ([]string, error) {
	if tenant == "" {
		return nil, fmt.Errorf("neostore: list: empty tenant: %w", ErrInvalid)
	}
	body, err := c.do(ctx, "list", http.MethodGet, "/api/"+url.PathEscape(tenant)+"/secrets", "application/json", nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	keys := []string{}
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, errors.New("neostore: list: the answer is not a JSON array of strings")
	}
	return keys, nil
}

func checkNames(op, tenant, key string) error {
	if tenant == "" {
		return fmt.Errorf("neostore: %s: empty tenant: %w", op, ErrInvalid)
	}
	if key == "" {
		return fmt.Errorf("neostore: %s: empty key: %w", op, ErrInvalid)
	}
	return nil
}

func secretPath(tenant, key string) string {
	return "/api/" + url.PathEscape(tenant) + "/secrets/" + url.PathEscape(key)
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// untrusted reports whether err is the server's certificate failing
// verification, or a server that does not speak TLS.
func untrusted(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		header   tls.RecordHeaderError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &unknown) ||
		errors.As(err, &hostname) || errors.As(err, &invalid)
}

// do sends the request with retries and returns the body of an answer with
// status want. Every operation of the API is idempotent, so every one is
// retried on connection failures, 429 and 503.
func (c *Client) do(ctx context.Context, op, method, path, accept string, body []byte, want int) ([]byte, error) {
	var last error
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, &canceledError{op: op, cause: err, last: last}
		}
		data, err := c.attempt(ctx, op, method, path, accept, body, want)
		if err == nil {
			return data, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, &canceledError{op: op, cause: cerr, last: last}
		}
		last = err
		wait, ok := c.retry.wait(n, err)
		if !ok {
			return nil, err
		}
		if deadline, has := ctx.Deadline(); has && c.retry.now().Add(wait).After(deadline) {
			return nil, err // the wait would outlast the caller: fail now
		}
		if !c.sleep(ctx, wait) {
			return nil, &canceledError{op: op, cause: ctx.Err(), last: last}
		}
	}
}

// attempt sends the request once, bounded by the client's timeout.
func (c *Client) attempt(ctx context.Context, op, method, path, accept string, body []byte, want int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := *c.base
	u.Path += path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("neostore: %s: building the request: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if err := c.auth(ctx, req.Header); err != nil {
		return nil, fmt.Errorf("neostore: %s: %w", op, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if untrusted(err) {
			// Not a failure to reach the server, and asking again will
			// not make its certificate trusted.
			return nil, fmt.Errorf("neostore: %s: %w", op, err)
		}
		return nil, &connError{op: op, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, &connError{op: op, err: err}
	}
	if len(data) > maxAnswerBytes {
		return nil, fmt.Errorf("neostore: %s: the answer is larger than %d bytes", op, maxAnswerBytes)
	}
	if resp.StatusCode == want {
		return data, nil
	}
	if resp.StatusCode < 400 {
		// A redirect (not followed: it would carry the credential) or an
		// unexpected success.
		return nil, &Error{Op: op, Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	}
	e := problemError(op, resp.StatusCode, data)
	e.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.retry.now())
	return nil, e
}
