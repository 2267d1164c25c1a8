// Package client is the Go client of the Neostore Secret API: Get, Put,
// Delete and List over HTTP, with retries on connection failures, 429 and
// 503, and an opt-in in-memory read cache.
//
// It imports only the standard library, so applications can depend on it
// without the server.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of the options.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultUserAgent = "neostore-secrets-client/1"
	DefaultRetries   = 4
)

// Client talks to one Neostore server. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	http      *http.Client
	auth      func(ctx context.Context, h http.Header) error
	userAgent string
	timeout   time.Duration
	retry     retryPolicy
	cache     *cache // nil without WithCache
	sleep     func(ctx context.Context, d time.Duration) bool
}

type options struct {
	apiKey     string
	tokens     func(ctx context.Context) (string, error)
	caBundle   []byte
	tlsConfig  *tls.Config
	timeout    time.Duration
	userAgent  string
	httpClient *http.Client
	retries    int
	cache      *CacheConfig
	now        func() time.Time
}

// Option configures a Client in New.
type Option func(*options) error

// WithAPIKey sends key in the X-API-KEY header of every request. It cannot
// be combined with WithTokenSource.
func WithAPIKey(key string) Option {
	return func(o *options) error {
		if key == "" {
			return errors.New("client: WithAPIKey: empty key")
		}
		o.apiKey = key
		return nil
	}
}

// WithTokenSource asks src for a bearer token before every attempt and
// sends it as Authorization: Bearer, so a caller can refresh OAuth2 tokens
// (src should cache the token until it nears expiry). It cannot be combined
// with WithAPIKey.
func WithTokenSource(src func(ctx context.Context) (string, error)) Option {
	return func(o *options) error {
		if src == nil {
			return errors.New("client: WithTokenSource: nil source")
		}
		o.tokens = src
		return nil
	}
}

// WithCABundle trusts the PEM certificates of pem (and only them) for
// HTTPS, as with `--cacert`. With WithTLSConfig too, it replaces that
// configuration's RootCAs.
func WithCABundle(pem []byte) Option {
	return func(o *options) error {
		o.caBundle = pem
		return nil
	}
}

// WithTLSConfig uses cfg for HTTPS (client certificates, server name,
// roots). The default is Go's: the system roots, TLS 1.2 and up.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) error {
		o.tlsConfig = cfg
		return nil
	}
}

// WithTimeout bounds each attempt, from connecting to reading the whole
// answer; the default is 10s. The caller's context bounds the whole call,
// retries included.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("client: WithTimeout: must be positive")
		}
		o.timeout = d
		return nil
	}
}

// WithUserAgent sets the User-Agent header; the default is
// "neostore-secrets-client/1".
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		o.userAgent = ua
		return nil
	}
}

// WithHTTPClient sends the requests with c instead of a client of its own.
// It cannot be combined with WithCABundle or WithTLSConfig (configure c's
// transport instead). Danger: if c follows redirects, the X-API-KEY header
// follows them too; the client's own http.Client never follows redirects.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("client: WithHTTPClient: nil client")
		}
		o.httpClient = c
		return nil
	}
}

// WithRetries sets how many times a failed attempt is retried after the
// first one; the default is 4, 0 turns retries off. Only connection
// failures, 429 and 503 are retried.
func WithRetries(max int) Option {
	return func(o *options) error {
		if max < 0 {
			return errors.New("client: WithRetries: negative count")
		}
		o.retries = max
		return nil
	}
}

// WithClock sets the clock the read cache and Retry-After dates are
// measured by; the default is time.Now. Tests use it to step time.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("client: WithClock: nil clock")
		}
		o.now = now
		return nil
	}
}

// New returns a client of the server at baseURL (like
// http://127.0.0.1:8200). It does not contact the server.
func New(baseURL string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout, userAgent: DefaultUserAgent, retries: DefaultRetries, now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	base, err := url.Parse(baseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, errors.New("client: base URL must be http:// or https:// with a host")
	}
	if base.User != nil {
		// A credential in the URL would end up in error strings and logs.
		return nil, errors.New("client: base URL must not carry user info; use WithAPIKey or WithTokenSource")
	}
	if base.RawQuery != "" || base.Fragment != "" {
		return nil, errors.New("client: base URL must not have a query or fragment")
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	if o.apiKey != "" && o.tokens != nil {
		return nil, errors.New("client: WithAPIKey and WithTokenSource are exclusive")
	}
	hc := o.httpClient
	if hc == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		if o.tlsConfig != nil || o.caBundle != nil {
			cfg := &tls.Config{}
			if o.tlsConfig != nil {
				cfg = o.tlsConfig.Clone()
			}
			if o.caBundle != nil {
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(o.caBundle) {
					return nil, errors.New("client: WithCABundle: no PEM certificate found")
				}
				cfg.RootCAs = pool
			}
			transport.TLSClientConfig = cfg
		}
		hc = &http.Client{
			Transport: transport,
			// The credential header would follow a redirect to any host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	} else if o.tlsConfig != nil || o.caBundle != nil {
		return nil, errors.New("client: WithHTTPClient cannot be combined with WithCABundle or WithTLSConfig")
	}
	c := &Client{
		base:      base,
		http:      hc,
		userAgent: o.userAgent,
		timeout:   o.timeout,
		retry:     retryPolicy{max: o.retries, base: 200 * time.Millisecond, cap: 10 * time.Second, now: o.now},
		sleep:     sleep,
	}
	switch {
	case o.apiKey != "":
		key := o.apiKey
		c.auth = func(_ context.Context, h http.Header) error {
			h.Set("X-API-KEY", key)
			return nil
		}
	case o.tokens != nil:
		src := o.tokens
		c.auth = func(ctx context.Context, h http.Header) error {
			tok, err := src(ctx)
			if err != nil {
				return &tokenError{err: err}
			}
			h.Set("Authorization", "Bearer "+tok)
			return nil
		}
	default:
		c.auth = func(context.Context, http.Header) error { return nil }
	}
	if o.cache != nil {
		c.cache, err = newCache(*o.cache, o.now)
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// tokenError is a failure of the caller's token source. It is not retried.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "neostore: token source: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }
