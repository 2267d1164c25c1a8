package webhooktest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// maxBody bounds what the receiver reads of one delivery; the
// specification recommends payloads under 20 kB.
const maxBody = 1 << 20

// Request is one delivery attempt as the receiver saw it.
type Request struct {
	ID        string // webhook-id
	Timestamp int64  // webhook-timestamp, unix seconds (0 when malformed)
	Signature string // webhook-signature as sent
	Body      []byte // exactly as received
	Header    http.Header

	// The payload's envelope ("Payload structure"), and the fields of
	// neostore-secrets' data the tests match on.
	Type           string
	EventTimestamp string
	Data           json.RawMessage
	Tenant, Key    string // data.tenantId, data.key
	Created        *bool  // data.created, when present

	Received time.Time
	// Verified says whether the delivery passed Verify; Problem says why
	// not, and Matched lists the receiver's secrets whose signature the
	// header carried (during a rotation, more than one).
	Verified bool
	Problem  string
	Matched  []int

	// Status is what the receiver answered; 0 while it holds the answer
	// back, or when the sender went away (Gone) before it.
	Status   int
	Gone     bool
	Answered time.Time
}

// Delivered reports whether the attempt delivered the event: it verified
// and was answered with a 2xx.
func (r Request) Delivered() bool { return r.Verified && r.Status >= 200 && r.Status < 300 }

// Response is the receiver's scripted answer to one attempt.
type Response struct {
	Status     int    // 0 means 204 for a verified delivery, 400 for one that is not
	RetryAfter string // the Retry-After header, when set
	// Hold, when not nil, makes the receiver wait until it is closed (or the
	// sender goes away, or the receiver closes) before it answers. A channel
	// never closed is a receiver that hangs.
	Hold <-chan struct{}
	// Delay waits this long before answering (bounded the same way).
	Delay time.Duration
}

// Responder chooses the answer to an attempt; n counts the attempts with
// the same webhook-id received before it (0 for the first).
type Responder func(r Request, n int) Response

// Options configure a Receiver. The zero value verifies nothing until
// SetSecrets is called and answers 204 to what verifies.
type Options struct {
	Secrets   []string         // serialized signing secrets ("whsec_...")
	Tolerance time.Duration    // default DefaultTolerance
	Now       func() time.Time // default time.Now
	Respond   Responder        // default: the zero Response
}

// Receiver is an HTTP endpoint on loopback that verifies and records every
// delivery. Its methods are safe for concurrent use.
type Receiver struct {
	URL string // http://127.0.0.1:port/hook

	now       func() time.Time
	tolerance time.Duration
	srv       *http.Server
	ln        net.Listener
	closing   chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	keys     [][]byte
	respond  Responder
	requests []*Request
	changed  chan struct{} // closed and replaced at every change of requests
}

// Start starts a receiver on 127.0.0.1 at a port of the kernel's choosing.
// Close stops it.
func Start(opts Options) (*Receiver, error) {
	r := &Receiver{
		now:       opts.Now,
		tolerance: opts.Tolerance,
		respond:   opts.Respond,
		closing:   make(chan struct{}),
		changed:   make(chan struct{}),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.tolerance == 0 {
		r.tolerance = DefaultTolerance
	}
	if err := r.SetSecrets(opts.Secrets...); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.ln = ln
	r.URL = "http://" + ln.Addr().String() + "/hook"
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

// Close releases every held answer and stops the receiver.
func (r *Receiver) Close() error {
	r.closeOnce.Do(func() { close(r.closing) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}

// SetSecrets replaces the signing secrets the receiver accepts; Matched
// indexes refer to their order.
func (r *Receiver) SetSecrets(secrets ...string) error {
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, err := DecodeSecret(s)
		if err != nil {
			return err
		}
		keys[i] = k
	}
	r.mu.Lock()
	r.keys = keys
	r.mu.Unlock()
	return nil
}

// SetResponder replaces how the receiver answers from now on.
func (r *Receiver) SetResponder(f Responder) {
	r.mu.Lock()
	r.respond = f
	r.mu.Unlock()
}

// Requests returns a copy of every attempt received so far, in order of
// arrival.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Request, len(r.requests))
	for i, q := range r.requests {
		out[i] = *q
	}
	return out
}

// Wait returns nil once cond holds for the requests received so far
// (checked at once and after every arrival and answer), or ctx's error.
func (r *Receiver) Wait(ctx context.Context, cond func([]Request) bool) error {
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if cond(r.Requests()) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitTimeout is Wait with a bound of d; the error says the bound passed.
func (r *Receiver) WaitTimeout(d time.Duration, cond func([]Request) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.Wait(ctx, cond); err != nil {
		return errors.New("webhooktest: condition not met within " + d.String())
	}
	return nil
}

// touch wakes the waiters; called with r.mu held.
func (r *Receiver) touch() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// ServeHTTP verifies, records and answers one delivery attempt.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		http.Error(w, "body unreadable", http.StatusBadRequest)
		return
	}
	q := &Request{
		ID:        req.Header.Get("webhook-id"),
		Signature: req.Header.Get("webhook-signature"),
		Body:      body,
		Header:    req.Header.Clone(),
		Received:  r.now(),
	}
	q.Timestamp, _ = strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64)
	var envelope struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &envelope) == nil {
		q.Type, q.EventTimestamp, q.Data = envelope.Type, envelope.Timestamp, envelope.Data
		var data struct {
			Tenant  string `json:"tenantId"`
			Key     string `json:"key"`
			Created *bool  `json:"created"`
		}
		if json.Unmarshal(envelope.Data, &data) == nil {
			q.Tenant, q.Key, q.Created = data.Tenant, data.Key, data.Created
		}
	}

	r.mu.Lock()
	keys, respond := r.keys, r.respond
	n := 0
	for _, p := range r.requests {
		if p.ID == q.ID {
			n++
		}
	}
	matched, verr := Verify(keys, q.ID, req.Header.Get("webhook-timestamp"), q.Signature, body, q.Received, r.tolerance)
	q.Verified, q.Matched = verr == nil, matched
	if verr != nil {
		q.Problem = verr.Error()
	}
	r.requests = append(r.requests, q)
	r.touch()
	r.mu.Unlock()

	var resp Response
	if respond != nil {
		resp = respond(*q, n)
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusNoContent
		if !q.Verified {
			status = http.StatusBadRequest
		}
	}
	gone := false
	if resp.Delay > 0 {
		t := time.NewTimer(resp.Delay)
		select {
		case <-t.C:
		case <-req.Context().Done():
			gone = true
		case <-r.closing:
		}
		t.Stop()
	}
	if resp.Hold != nil && !gone {
		select {
		case <-resp.Hold:
		case <-req.Context().Done():
			gone = true
		case <-r.closing:
		}
	}
	if !gone {
		if resp.RetryAfter != "" {
			w.Header().Set("Retry-After", resp.RetryAfter)
		}
		w.WriteHeader(status)
	}
	// The answer is recorded after it is written, so that a waiter who
	// sees it delivered knows the sender could have seen it too.
	r.mu.Lock()
	if gone {
		q.Gone = true
	} else {
		q.Status = status
	}
	q.Answered = r.now()
	r.touch()
	r.mu.Unlock()
}

// Summary counts a set of attempts by webhook-id.
type Summary struct {
	Attempts   int // every attempt received
	Invalid    int // attempts that did not verify
	Delivered  int // distinct webhook-ids delivered at least once
	Duplicates int // deliveries of a webhook-id beyond its first
	// Conflicts are webhook-ids delivered with different bodies: a
	// duplicate must be the same event.
	Conflicts []string
}

// Summarize counts requests.
func Summarize(requests []Request) Summary {
	var s Summary
	first := map[string][]byte{}
	for _, q := range requests {
		s.Attempts++
		if !q.Verified {
			s.Invalid++
		}
		if !q.Delivered() {
			continue
		}
		body, seen := first[q.ID]
		switch {
		case !seen:
			first[q.ID] = q.Body
			s.Delivered++
		default:
			s.Duplicates++
			if !sameEvent(body, q.Body) && !slices.Contains(s.Conflicts, q.ID) {
				s.Conflicts = append(s.Conflicts, q.ID)
			}
		}
	}
	return s
}

// sameEvent reports whether two bodies carry the same event: equal bytes,
// or equal JSON (a retry need not serialize the same way).
func sameEvent(a, b []byte) bool {
	if string(a) == string(b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
