package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
	"github.com/neostore/neostore-secrets/webhook"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	attempts []webhook.Result
	pending  []int
	oldest   time.Duration
	disabled int
}

func (o *recorder) Attempt(r webhook.Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attempts = append(o.attempts, r)
}

func (o *recorder) Pending(n int, oldest time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending = append(o.pending, n)
	o.oldest = max(o.oldest, oldest)
}

func (o *recorder) DisabledEndpoints(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.disabled = n
}

// moreTests are the dispatcher's loop, its sharing of the work between
// nodes, its batches, purge, observer and logs, on the store open returns.
func moreTests(t *testing.T, open func(t *testing.T) store) {
	t.Run("RunWakesOnNotifyAndStops", func(t *testing.T) {
		recorded := make(chan webhook.Result, 1)
		r := newRig(t, open(t), func(o *webhook.Options) { o.Observer = signal(recorded) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.d.Run(ctx) }()
		defer func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		}()
		r.put("db", neostore.Validity{})
		r.d.Notify()
		r.d.Notify() // never blocks
		select {
		case res := <-recorded:
			if res != webhook.Delivered {
				t.Fatalf("attempt %s, want delivered", res)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no attempt recorded within 10s of Notify")
		}
		r.wantDelivery(neostore.DeliveryDelivered, 1, 204, "")
	})

	t.Run("OnePassLeasesMoreThanItSendsAtOnce", func(t *testing.T) {
		// A burst of changes is one pass's work: its lease (a store write)
		// takes them all, and the attempts take turns for the 16 sends at
		// once. It used to lease only as many as could be sent at once.
		const n = 200
		r := newRig(t, open(t), nil)
		for i := range n {
			r.put(fmt.Sprintf("k%03d", i), neostore.Validity{})
		}
		if got := r.step(); len(got) != n {
			t.Fatalf("one pass delivered %d of %d events", len(got), n)
		}
		r.noDuplicates()
	})

	t.Run("RunLeasesAgainWhenASlotFrees", func(t *testing.T) {
		// More deliveries than attempt slots, and a poll so long that only
		// the end of an attempt can start the next lease: they all go
		// without a poll (it used to be 16 per poll, 64/s), and without a
		// pass per delivery more than the slots ask for.
		const n = 200
		counts := &countPasses{store: open(t)}
		var delivered atomic.Int64
		done200 := make(chan struct{})
		r := newRig(t, counts, func(o *webhook.Options) {
			o.Observer = countAttempts{n: &delivered, want: n, done: done200}
		})
		webhook.SetPoll(r.d, time.Hour)
		for i := range n {
			r.put(fmt.Sprintf("k%03d", i), neostore.Validity{})
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		before := counts.passes.Load()
		go func() { done <- r.d.Run(ctx) }()
		defer func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		}()
		select {
		case <-done200:
		case <-time.After(60 * time.Second):
			t.Fatalf("%d of %d deliveries recorded, the rest wait for the hour's poll", delivered.Load(), n)
		}
		// One pass per freed slot at most (each leases every free slot),
		// plus the first: a loop that spun while work remained would make
		// many more.
		p := counts.passes.Load() - before
		if p > n+2 {
			t.Errorf("%d passes for %d deliveries, want at most %d", p, n, n+2)
		}
		t.Logf("%d deliveries in %d passes", n, p)
		r.mu.Lock()
		distinct := len(r.seen)
		r.mu.Unlock()
		if distinct != n {
			t.Errorf("receiver saw %d distinct events, want %d", distinct, n)
		}
		r.noDuplicates()
	})

	t.Run("CountsPendingAtMostOncePerPoll", func(t *testing.T) {
		// Counting reads every pending delivery; under load Notify makes
		// passes back to back, and they must not each count. Deliveries
		// still go in every pass.
		counts := &countPasses{store: open(t)}
		r := newRig(t, counts, nil)
		before := counts.counted.Load()
		for i := range 5 {
			r.put(fmt.Sprintf("k%d", i), neostore.Validity{})
			if got := len(r.step()); got != 1 {
				t.Fatalf("pass %d delivered %d, want 1", i, got)
			}
		}
		if c := counts.counted.Load() - before; c != 0 {
			t.Errorf("5 passes within a poll of the first counted the pending deliveries %d times, want 0", c)
		}
		r.set(t0.Add(250 * time.Millisecond))
		r.step()
		if c := counts.counted.Load() - before; c != 1 {
			t.Errorf("a pass a poll later counted %d times, want 1", c)
		}
	})

	t.Run("ADeliveryCutShortWaitsForTheLeaseOption", func(t *testing.T) {
		// A node stops during an attempt: the delivery is sent again once
		// its lease (Options.Lease, not the 60 s default) has ended.
		r := newRig(t, open(t), func(o *webhook.Options) { o.Lease = 25 * time.Second })
		r.answers([]int{hang})
		r.put("db", neostore.Validity{})
		ctx, cancel := context.WithCancel(context.Background())
		stepped := make(chan error, 1)
		go func() { stepped <- r.d.Step(ctx) }()
		select {
		case <-r.wake:
		case <-time.After(10 * time.Second):
			t.Fatal("no attempt reached the receiver")
		}
		cancel() // as a shutdown: the attempt is not recorded
		if err := <-stepped; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Step: %v", err)
		}
		other := webhook.New(r.opts)
		r.set(t0.Add(24 * time.Second))
		if err := other.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.wantDelivery(neostore.DeliveryPending, 0, 0, "")
		r.set(t0.Add(26 * time.Second))
		if err := other.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.wantDelivery(neostore.DeliveryDelivered, 1, 204, "")
	})

	t.Run("NoAttemptThatCouldOutliveItsLease", func(t *testing.T) {
		// Five deliveries to one endpoint, which takes four at once: the
		// fifth waits for a slot. When one frees, the lease has less than
		// an attempt's timeout left, so the fifth is not sent (another
		// node may take it when the lease ends); it goes after the lease.
		r := newRig(t, open(t), func(o *webhook.Options) { o.Timeout, o.Lease = 10*time.Second, 20*time.Second })
		r.answers([]int{held, held, held, held})
		for i := range 5 {
			r.put(fmt.Sprintf("k%d", i), neostore.Validity{})
		}
		stepped := make(chan error, 1)
		go func() { stepped <- r.d.Step(context.Background()) }()
		deadline := time.After(10 * time.Second)
		for n := 0; n < 4; {
			select {
			case <-r.wake:
				r.mu.Lock()
				n = r.requests
				r.mu.Unlock()
			case <-deadline:
				t.Fatal("4 attempts did not reach the receiver")
			}
		}
		r.set(t0.Add(11 * time.Second)) // 9 s of the lease left
		close(r.release)
		if err := <-stepped; err != nil {
			t.Fatal(err)
		}
		// The four held, and nothing in a pass during the lease: the fifth
		// is still leased.
		if got := len(r.step()); got != 4 {
			t.Fatalf("%d messages by the end of a pass during the lease, want 4", got)
		}
		r.mu.Lock()
		requests := r.requests
		r.mu.Unlock()
		if requests != 4 {
			t.Fatalf("the receiver got %d requests, want the 4 that fit in the lease", requests)
		}
		if got := r.stepAt(t0.Add(21 * time.Second)); len(got) != 1 {
			t.Fatalf("after the lease: %v, want the fifth", got)
		}
		r.noDuplicates()
	})

	t.Run("TwoNodesShareTheWork", func(t *testing.T) {
		st := open(t)
		r := newRig(t, st, nil, 168*time.Hour, 24*time.Hour)
		other := webhook.New(r.opts)
		for i := range 5 {
			r.put(fmt.Sprintf("k%d", i), expires(t0.Add(time.Duration(8+i)*day)))
		}
		total := 0
		for step := time.Duration(0); step <= 14*day; step += 6 * time.Hour {
			r.set(t0.Add(step))
			var wg sync.WaitGroup
			for _, d := range []*webhook.Dispatcher{r.d, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if err := d.Step(ctx); err != nil {
						t.Errorf("Step: %v", err)
					}
				}()
			}
			wg.Wait()
			total += len(r.step())
		}
		// Per key: updated, two leads, expired.
		if total != 5*4 {
			t.Fatalf("%d messages, want %d", total, 5*4)
		}
		r.noDuplicates()
	})

	t.Run("ScanAcrossBatches", func(t *testing.T) {
		r := newRig(t, open(t), nil, 24*time.Hour)
		webhook.SetDueBatch(r.d, 3)
		// Four windows end at one instant (more than a batch), six more
		// one second apart.
		for i := range 4 {
			r.put(fmt.Sprintf("same%d", i), expires(t0.Add(2*day)))
		}
		for i := range 6 {
			r.put(fmt.Sprintf("k%d", i), expires(t0.Add(3*day+time.Duration(i)*time.Second)))
		}
		if got := len(r.step()); got != 10 {
			t.Fatalf("%d secret.updated, want 10", got)
		}
		r.set(t0.Add(10 * day))
		counts := map[string]int{}
		for range 20 {
			for _, m := range r.step() {
				counts[m.Type]++
			}
		}
		if counts["secret.expiring"] != 10 || counts["secret.expired"] != 10 {
			t.Fatalf("got %v, want 10 of each", counts)
		}
		r.noDuplicates()
	})

	t.Run("PurgeAfterSevenDays", func(t *testing.T) {
		r := newRig(t, open(t), nil)
		r.put("db", neostore.Validity{})
		r.step()
		r.wantDelivery(neostore.DeliveryDelivered, 1, 204, "")
		r.stepAt(t0.Add(7*day - time.Hour))
		r.wantDelivery(neostore.DeliveryDelivered, 1, 204, "")
		r.stepAt(t0.Add(7*day + time.Hour))
		if ds, err := r.store.ListDeliveries(context.Background(), r.sub.ID, false, 10); err != nil || len(ds) != 0 {
			t.Fatalf("after 7 days: %d deliveries (%v), want none", len(ds), err)
		}
	})

	t.Run("Observer", func(t *testing.T) {
		obs := &recorder{}
		r := newRig(t, open(t), func(o *webhook.Options) { o.Observer = obs })
		r.answers([]int{503, 410})
		r.put("db", neostore.Validity{})
		r.step()
		r.stepAt(t0.Add(time.Minute))
		r.stepAt(t0.Add(2 * time.Minute))
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if fmt.Sprint(obs.attempts) != "[retry disabled]" || obs.disabled != 1 {
			t.Fatalf("attempts %v, disabled %d; want [retry disabled], 1", obs.attempts, obs.disabled)
		}
		if !strings.Contains(fmt.Sprint(obs.pending), "1") || obs.pending[len(obs.pending)-1] != 0 || obs.oldest != time.Minute {
			t.Fatalf("pending %v, oldest %v; want 1 then 0, oldest 1m", obs.pending, obs.oldest)
		}
	})

	t.Run("LogsNoSecretsOrURLs", func(t *testing.T) {
		var buf bytes.Buffer
		var mu sync.Mutex
		r := newRig(t, open(t), func(o *webhook.Options) {
			o.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		})
		r.sub.URL = strings.Replace(r.sub.URL, "http://", "http://alice:pa55word@", 1) + "?token=t0ken"
		if err := r.store.UpdateWebhook(context.Background(), r.sub); err != nil {
			t.Fatal(err)
		}
		r.answers([]int{503, 410})
		r.put("db", neostore.Validity{})
		r.step()
		r.stepAt(t0.Add(time.Minute))
		r.stepAt(t0.Add(2 * time.Minute))
		if _, err := r.d.SendTest(context.Background(), r.sub); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		logs := buf.String()
		mu.Unlock()
		if !strings.Contains(logs, "webhook: attempt") {
			t.Fatalf("no attempt was logged:\n%s", logs)
		}
		for _, s := range []string{"alice", "pa55word", "t0ken", "127.0.0.1", r.secret, strings.TrimPrefix(r.secret, "whsec_")} {
			if strings.Contains(logs, s) {
				t.Errorf("the log contains %q:\n%s", s, logs)
			}
		}
	})
}

// countPasses counts the dispatcher's passes (each lists the
// subscriptions once) and its counts of the pending deliveries.
type countPasses struct {
	store
	passes  atomic.Int64
	counted atomic.Int64 // PendingDeliveries calls
}

func (c *countPasses) PendingDeliveries(ctx context.Context) (int, neostore.Bound, error) {
	c.counted.Add(1)
	return c.store.PendingDeliveries(ctx)
}

func (c *countPasses) ListWebhooks(ctx context.Context) ([]neostore.WebhookSubscription, error) {
	c.passes.Add(1)
	return c.store.ListWebhooks(ctx)
}

// countAttempts is an Observer that counts delivered attempts and closes
// done at the want-th.
type countAttempts struct {
	n    *atomic.Int64
	want int64
	done chan struct{}
}

func (c countAttempts) Attempt(r webhook.Result) {
	if r == webhook.Delivered && c.n.Add(1) == c.want {
		close(c.done)
	}
}
func (countAttempts) Pending(int, time.Duration) {}
func (countAttempts) DisabledEndpoints(int)      {}

// signal is an Observer that sends each attempt's result on c once it
// is recorded.
type signal chan webhook.Result

func (c signal) Attempt(r webhook.Result) {
	select {
	case c <- r:
	default:
	}
}
func (signal) Pending(int, time.Duration) {}
func (signal) DisabledEndpoints(int)      {}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestDispatcher_More_Bolt(t *testing.T) {
	moreTests(t, openBolt)
}

// staleList is a store whose ListWebhooks misses one subscription, as the
// list of a pass that began before it was created would.
type staleList struct {
	store
	hide string
}

func (s staleList) ListWebhooks(ctx context.Context) ([]neostore.WebhookSubscription, error) {
	ws, err := s.store.ListWebhooks(ctx)
	var out []neostore.WebhookSubscription
	for _, w := range ws {
		if w.ID != s.hide {
			out = append(out, w)
		}
	}
	return out, err
}

func TestDispatcher_SubscriptionNewerThanThePass_Bolt(t *testing.T) {
	// A node whose list of subscriptions is older than a delivery (another
	// node fanned out to a subscription created since) still sends it.
	r := newRig(t, openBolt(t), nil)
	r.put("db", neostore.Validity{})
	r.step()
	r.wantDelivery(neostore.DeliveryDelivered, 1, 204, "")
	if err := r.store.Redeliver(context.Background(), r.delivery().ID, t0); err != nil {
		t.Fatal(err)
	}
	opts := r.opts
	opts.Store = staleList{r.store, r.sub.ID}
	if err := webhook.New(opts).Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.wantDelivery(neostore.DeliveryDelivered, 1, 204, "")
}
