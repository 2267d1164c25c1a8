package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/neostore/neostore-secrets"
)

// DefaultTimeout bounds one attempt, from dialling to the end of the
// response headers.
const DefaultTimeout = 10 * time.Second

// maxResponseBody is how much of a receiver's response is read (then
// discarded) so that the connection can be reused; the rest is dropped
// with the connection.
const maxResponseBody = 64 << 10

// userAgent names us to receivers.
const userAgent = "neostore-secrets-webhooks/1"

// Result is what an attempt's outcome means for its delivery.
type Result string

// The results of an attempt.
const (
	Delivered Result = "delivered" // a 2xx
	Retry     Result = "retry"     // 408, 429, 5xx, a timeout or a connection fault: try again later
	Failed    Result = "failed"    // final: any other status, a refused destination or URL
	Disabled  Result = "disabled"  // 410 Gone: final, and the endpoint is disabled
)

// Outcome is the outcome of one attempt.
type Outcome struct {
	Result Result
	// Status is the response's HTTP status, 0 when none was received.
	Status int
	// Error is a fixed phrase of ours saying what went wrong, "" when
	// delivered. It never quotes a Go error, a URL or a response.
	Error string
	// RetryAfter is the receiver's Retry-After (seconds or an HTTP date,
	// capped at an hour), 0 when it sent none.
	RetryAfter time.Duration
}

// The fixed phrases of Outcome.Error and Delivery.LastError.
const (
	phraseTimeout     = "timeout"
	phraseConnection  = "connection failed"
	phraseRefused     = "destination refused"
	phraseInsecure    = "insecure url refused"
	phraseBadURL      = "invalid url"
	phraseRetryStatus = "retryable status"
	phraseFinalStatus = "final status"
	phraseGone        = "endpoint gone"
	phraseRedirect    = "redirect not followed"
	phraseDisabled    = "endpoint disabled"
	phraseNoSecret    = "signing secret unavailable"
	phraseExhausted   = "out of retries"
	phraseRemoved     = "subscription removed"
)

// errRefused is what the dialer's Control hook returns for a destination
// it refuses.
var errRefused = errors.New("webhook: destination address refused")

// sender makes attempts: one http.Client that follows no redirect, uses no
// proxy and dials only addresses its policy allows.
type sender struct {
	client        *http.Client
	allowInsecure bool
	now           func() time.Time
}

func newSender(timeout time.Duration, allowPrivate, allowInsecure bool, tlsConfig *tls.Config, now func() time.Time) *sender {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = refusePrivate
	}
	tr := &http.Transport{
		Proxy:                 nil, // never from the environment: the destination is checked, not a proxy
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &sender{
		client: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			// A redirect is not followed: it could lead to a destination
			// the URL check never saw. The 3xx is the attempt's outcome.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		allowInsecure: allowInsecure,
		now:           now,
	}
}

// refusePrivate is the dialer's Control hook: it sees the address actually
// being connected, after DNS, so a name that resolves (or is rebound) to an
// internal address is refused all the same.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !publicAddr(ap.Addr()) {
		return errRefused
	}
	return nil
}

var (
	cgnat     = netip.MustParsePrefix("100.64.0.0/10")
	thisNet   = netip.MustParsePrefix("0.0.0.0/8")
	broadcast = netip.MustParseAddr("255.255.255.255")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
)

// publicAddr reports whether a may be connected to: not loopback, private
// (RFC 1918, 100.64/10 CGNAT, fc00::/7 unique-local), link-local,
// unspecified or multicast, nor an IPv4-mapped or NAT64 form of one.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:16]))
	}
	switch {
	case !a.IsValid(), a.IsUnspecified(), a.IsLoopback(), a.IsPrivate(),
		a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast(), a.IsMulticast(),
		cgnat.Contains(a), thisNet.Contains(a), a == broadcast:
		return false
	}
	return true
}

// ValidateURL checks a subscription's endpoint URL: absolute, with a host,
// https (or http when allowInsecure). It returns an EINVALID error naming
// the field "url", whose message does not quote the URL.
func ValidateURL(u string, allowInsecure bool) error {
	_, err := parseURL(u, allowInsecure)
	return err
}

var (
	errBadURL      = neostore.FieldError("url", "The URL must be an absolute https URL with a host.")
	errInsecureURL = neostore.FieldError("url", "The URL must use https; this server does not allow http endpoints.")
)

func parseURL(u string, allowInsecure bool) (*url.URL, error) {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || p.Hostname() == "" || p.Opaque != "" {
		return nil, errBadURL
	}
	switch strings.ToLower(p.Scheme) {
	case "https":
	case "http":
		if !allowInsecure {
			return nil, errInsecureURL
		}
	default:
		return nil, errBadURL
	}
	return p, nil
}

// send makes one attempt: it posts body to u with the Standard Webhooks
// headers, signed with keys at ts, and classifies what came back.
func (s *sender) send(ctx context.Context, u, id string, ts time.Time, body []byte, keys [][]byte) Outcome {
	p, err := parseURL(u, s.allowInsecure)
	if errors.Is(err, errInsecureURL) {
		return Outcome{Result: Failed, Error: phraseInsecure}
	} else if err != nil || !safeID(id) {
		return Outcome{Result: Failed, Error: phraseBadURL}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.String(), strings.NewReader(string(body)))
	if err != nil {
		return Outcome{Result: Failed, Error: phraseBadURL}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", SignatureHeader(keys, id, ts, body))
	resp, err := s.client.Do(req)
	if err != nil {
		return transportOutcome(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	resp.Body.Close()
	return statusOutcome(resp.StatusCode, resp.Header.Get("Retry-After"), s.now())
}

// transportOutcome classifies an attempt that got no response.
func transportOutcome(err error) Outcome {
	var ne net.Error
	switch {
	case errors.Is(err, errRefused):
		return Outcome{Result: Failed, Error: phraseRefused}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Outcome{Result: Retry, Error: phraseTimeout}
	}
	return Outcome{Result: Retry, Error: phraseConnection}
}

// statusOutcome classifies a response by its status: 2xx delivered, 410
// disabled, 408, 429 and 5xx retried (honouring Retry-After), any other
// (3xx included: redirects are not followed) final.
func statusOutcome(status int, retryAfter string, now time.Time) Outcome {
	o := Outcome{Status: status}
	switch {
	case status >= 200 && status < 300:
		o.Result = Delivered
	case status == http.StatusGone:
		o.Result, o.Error = Disabled, phraseGone
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500 && status < 600:
		o.Result, o.Error = Retry, phraseRetryStatus
		o.RetryAfter = parseRetryAfter(retryAfter, now)
	case status >= 300 && status < 400:
		o.Result, o.Error = Failed, phraseRedirect
	default:
		o.Result, o.Error = Failed, phraseFinalStatus
	}
	return o
}

// parseRetryAfter returns the wait a Retry-After header asks for, in
// delta-seconds or as an HTTP date, capped at maxBackoff; 0 when absent,
// malformed or past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxBackoff/time.Second) {
			return maxBackoff
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxBackoff)
}

// String is for logs.
func (o Outcome) String() string {
	return fmt.Sprintf("%s status=%d %s", o.Result, o.Status, o.Error)
}
