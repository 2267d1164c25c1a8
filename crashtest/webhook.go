package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"time"

	neostore "github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/webhooktest"
)

// The webhook mode (-webhook): a subscription to every tenant points at a
// receiver in this process (package webhooktest, written from the Standard
// Webhooks specification, not from the server's signer), so that every kill
// also lands on deliveries: an event in the outbox not yet fanned out, a
// delivery leased and in flight, answered but not yet marked delivered.
// After the last restart the driver waits (bounded by -webhook-drain) until
// every acknowledged change's event has arrived, then checks that
//
//   - every acknowledged PUT has its secret.updated event, with the created
//     flag the key's history gives, and every acknowledged DELETE of a key
//     that held a value its secret.deleted event (a DELETE that finds
//     nothing makes no event); a change cut off by the kill may have one or
//     not, but nothing else may;
//   - a webhook-id delivered twice is the same event (at-least-once: a kill
//     between the receiver's 2xx and the store's record of it sends it
//     again, with the same id), and no change arrives under two ids;
//   - every attempt verifies: signature and timestamp.

// webhookConfig is the -webhook part of the command line.
type webhookConfig struct {
	on         bool
	drain      time.Duration // bound on the wait for the last deliveries
	lease      time.Duration // serve's --webhook-lease
	busyShare  float64       // share of first attempts answered 503 with Retry-After: 1
	maxDelay   time.Duration // the receiver answers after up to this long
	quietShare float64       // share of cycles whose writers stop halfway to the kill
}

// webhookServeArgs let serve deliver to the receiver on loopback over http.
var webhookServeArgs = []string{"--webhook-allow-private", "--webhook-allow-insecure"}

// hooks is the driver's webhook state.
type hooks struct {
	cfg    webhookConfig
	rcv    *webhooktest.Receiver
	subID  string
	mu     sync.Mutex // guards rng, which the receiver's handlers share
	rng    *rand.Rand
	result webhookResult
}

// webhookResult is what the final check found.
type webhookResult struct {
	attempts, gone, invalid  int
	delivered, duplicates    int
	conflicts                []string
	busy                     int // attempts answered 503
	unexpected               int // delivered events of a type, tenant or key no operation explains
	expectedMin, expectedMax int // events the acknowledged changes require, and with every unanswered one
	keysMismatched           int
	missing, unexplained     int
	drained                  bool
	drainTook                time.Duration
	mismatchEvidence         []string
}

// faults counts what makes the run fail.
func (r *webhookResult) faults() int {
	f := r.invalid + len(r.conflicts) + r.unexpected + r.keysMismatched
	if !r.drained {
		f++
	}
	return f
}

var (
	whsecPattern = regexp.MustCompile(`whsec_[A-Za-z0-9+/=]+`)
	whIDPattern  = regexp.MustCompile(`\bwh_[A-Za-z0-9_-]+`)
)

// subscribe starts the receiver and subscribes it to every tenant through
// the running server's admin socket.
func (d *driver) subscribe(ctx context.Context) error {
	h := &hooks{cfg: d.cfg.webhook, rng: rand.New(rand.NewPCG(d.cfg.seed, 1<<32))}
	rcv, err := webhooktest.Start(webhooktest.Options{Respond: h.respond})
	if err != nil {
		return err
	}
	h.rcv = rcv
	d.hooks = h
	stdout, stderr, code := d.bin.run(ctx, "webhook", "add", "--data", d.data, "--name", "crashtest",
		"--tenant", "*", "--url", rcv.URL)
	if code != 0 {
		return fmt.Errorf("webhook add: exit %d: %s", code, stderr)
	}
	secret := whsecPattern.FindString(stdout + stderr)
	h.subID = whIDPattern.FindString(stdout + stderr)
	if secret == "" || h.subID == "" {
		return fmt.Errorf("webhook add printed no signing secret or subscription id")
	}
	if err := rcv.SetSecrets(secret); err != nil {
		return fmt.Errorf("webhook add: %w", err)
	}
	fmt.Fprintf(d.out, "crashtest: webhook %s to %s (busy share %.2f, answers within %s, quiet cycles %.2f)\n",
		h.subID, rcv.URL, h.cfg.busyShare, h.cfg.maxDelay, h.cfg.quietShare)
	return nil
}

// respond is the receiver's script: a random delay, so that kills catch
// attempts in flight, and now and then a 503 that asks for a retry.
func (h *hooks) respond(q webhooktest.Request, n int) webhooktest.Response {
	h.mu.Lock()
	delay := time.Duration(h.rng.Int64N(int64(h.cfg.maxDelay) + 1))
	busy := n == 0 && h.rng.Float64() < h.cfg.busyShare
	h.mu.Unlock()
	if busy && q.Verified {
		return webhooktest.Response{Status: 503, RetryAfter: "1", Delay: delay}
	}
	return webhooktest.Response{Delay: delay}
}

// progress is the cycle line's webhook part.
func (h *hooks) progress() string {
	s := webhooktest.Summarize(h.rcv.Requests())
	return fmt.Sprintf("; webhooks delivered %d attempts %d duplicates %d invalid %d", s.Delivered, s.Attempts, s.Duplicates, s.Invalid)
}

// eventCounts are one key's delivered change events by kind.
type eventCounts struct{ created, updated, deleted int }

// expected is what a key's history allows: every set of delivered counts
// that some choice of which unanswered operations happened produces.
// Acknowledged operations happened; each happened PUT makes secret.updated
// (created when the key held no value), each happened DELETE of a key with
// a value makes secret.deleted.
func expected(ops []sentOp) map[eventCounts]bool {
	type state struct {
		held bool
		c    eventCounts
	}
	states := map[state]bool{{}: true}
	for _, op := range ops {
		next := map[state]bool{}
		for s := range states {
			if !op.acked {
				next[s] = true // it may not have happened
			}
			switch {
			case !op.del && s.held:
				s.c.updated++
			case !op.del:
				s.c.created++
				s.held = true
			case s.held:
				s.c.deleted++
				s.held = false
			}
			next[s] = true
		}
		states = next
	}
	out := map[eventCounts]bool{}
	for s := range states {
		out[s.c] = true
	}
	return out
}

// shortfall is how many events of want got lacks, and how many it has
// beyond want.
func shortfall(want, got eventCounts) (missing, extra int) {
	for _, p := range [][2]int{{want.created, got.created}, {want.updated, got.updated}, {want.deleted, got.deleted}} {
		missing += max(0, p[0]-p[1])
		extra += max(0, p[1]-p[0])
	}
	return missing, extra
}

// checkWebhooks compares the delivered events with every key's history.
func (d *driver) checkWebhooks() webhookResult {
	reqs := d.hooks.rcv.Requests()
	s := webhooktest.Summarize(reqs)
	r := webhookResult{attempts: s.Attempts, invalid: s.Invalid, delivered: s.Delivered, duplicates: s.Duplicates, conflicts: s.Conflicts}
	got := map[string]*eventCounts{} // tenant/key -> delivered events
	seen := map[string]bool{}
	for _, q := range reqs {
		if q.Gone {
			r.gone++
		}
		if q.Status == 503 {
			r.busy++
		}
		if !q.Delivered() || seen[q.ID] {
			continue
		}
		seen[q.ID] = true
		k := q.Tenant + "/" + q.Key
		c := got[k]
		if c == nil {
			c = &eventCounts{}
			got[k] = c
		}
		switch {
		case q.Type == neostore.EventSecretUpdated && q.Created != nil && *q.Created:
			c.created++
		case q.Type == neostore.EventSecretUpdated && q.Created != nil:
			c.updated++
		case q.Type == neostore.EventSecretDeleted && q.Created == nil:
			c.deleted++
		default:
			r.unexpected++
			r.mismatchEvidence = append(r.mismatchEvidence, fmt.Sprintf("webhook %s: an event no change makes: %s", q.ID, q.Body))
		}
	}
	for _, m := range d.keys {
		k := m.tenant + "/" + m.name
		g := eventCounts{}
		if c := got[k]; c != nil {
			g = *c
		}
		delete(got, k)
		allowed := expected(m.ops)
		lo, hi := -1, 0
		for c := range allowed {
			n := c.created + c.updated + c.deleted
			if lo < 0 || n < lo {
				lo = n
			}
			hi = max(hi, n)
		}
		r.expectedMin += lo
		r.expectedMax += hi
		if allowed[g] {
			continue
		}
		r.keysMismatched++
		bestMissing, bestExtra := -1, -1
		for c := range allowed {
			missing, extra := shortfall(c, g)
			if bestMissing < 0 || missing < bestMissing {
				bestMissing = missing
			}
			if bestExtra < 0 || extra < bestExtra {
				bestExtra = extra
			}
		}
		r.missing += bestMissing
		r.unexplained += bestExtra
		r.mismatchEvidence = append(r.mismatchEvidence, fmt.Sprintf("webhooks for %s: delivered created %d updated %d deleted %d; the history allows %s",
			k, g.created, g.updated, g.deleted, describeAllowed(allowed)))
	}
	for k, c := range got {
		r.unexpected += c.created + c.updated + c.deleted
		r.mismatchEvidence = append(r.mismatchEvidence, fmt.Sprintf("webhooks for %s, a key never written: %+v", k, *c))
	}
	return r
}

func describeAllowed(allowed map[eventCounts]bool) string {
	var parts []string
	for c := range allowed {
		parts = append(parts, fmt.Sprintf("(%d,%d,%d)", c.created, c.updated, c.deleted))
		if len(parts) == 8 {
			parts = append(parts, "...")
			break
		}
	}
	return strings.Join(parts, " ")
}

// drainWebhooks waits, after the last restart, until the delivered events
// match every key's history or -webhook-drain passes, and keeps the
// result.
func (d *driver) drainWebhooks(ctx context.Context) {
	start := time.Now()
	deadline := time.NewTimer(d.cfg.webhook.drain)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		r := d.checkWebhooks()
		if r.keysMismatched == 0 && r.unexpected == 0 {
			r.drained, r.drainTook = true, time.Since(start)
			d.hooks.result = r
			return
		}
		select {
		case <-tick.C:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		r.drainTook = time.Since(start)
		d.hooks.result = r
		return
	}
}

// webhookEvidence adds what the check found to the run's evidence, with
// `webhook deliveries --failed` when the deliveries did not all arrive.
func (d *driver) webhookEvidence(ctx context.Context) {
	r := &d.hooks.result
	const shown = 20
	for i, e := range r.mismatchEvidence {
		if i == shown {
			d.evidence = append(d.evidence, fmt.Sprintf("... and %d more webhook mismatches", len(r.mismatchEvidence)-shown))
			break
		}
		d.evidence = append(d.evidence, e)
	}
	for _, id := range r.conflicts {
		d.evidence = append(d.evidence, fmt.Sprintf("webhook-id %s delivered with two different bodies", id))
	}
	if r.invalid > 0 {
		for _, q := range d.hooks.rcv.Requests() {
			if !q.Verified {
				d.evidence = append(d.evidence, fmt.Sprintf("webhook-id %q did not verify: %s", q.ID, q.Problem))
				break
			}
		}
	}
	if !r.drained && d.srv != nil {
		stdout, stderr, _ := d.bin.run(ctx, "webhook", "deliveries", "--data", d.data, d.hooks.subID, "--failed")
		d.evidence = append(d.evidence, "webhook deliveries --failed: "+strings.TrimSpace(stdout+stderr))
	}
}

func (d *driver) printWebhookTotals(row func(string, any)) {
	r := &d.hooks.result
	row("webhook attempts received", r.attempts)
	row("  answered 503 (retry)", r.busy)
	row("  cut off by a kill", r.gone)
	row("  not verifying (signature/timestamp)", r.invalid)
	row("events delivered (distinct webhook-id)", r.delivered)
	row("events the changes require (min..max)", fmt.Sprintf("%d..%d", r.expectedMin, r.expectedMax))
	row("duplicates (same webhook-id)", r.duplicates)
	row("webhook-ids with two bodies", len(r.conflicts))
	row("keys whose events disagree", r.keysMismatched)
	row("missing events", r.missing)
	row("events no change explains", r.unexplained+r.unexpected)
	row("drained after the last restart", fmt.Sprintf("%v in %s (bound %s)", r.drained, r.drainTook.Round(time.Millisecond), d.cfg.webhook.drain))
}
