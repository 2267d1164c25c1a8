package ratelimit_test

import (
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/ratelimit"
)

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func TestLimiter_CredentialBucket(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := ratelimit.New(ratelimit.Config{CredentialRate: 10, CredentialBurst: 5, Now: c.Now})
	for i := range 5 {
		if ok, _, _ := l.Allow("apikey:a", "t1"); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, scope, wait := l.Allow("apikey:a", "t1")
	if ok || scope != "credential" || wait <= 0 || wait > 100*time.Millisecond {
		t.Errorf("request past the burst = %v %q %v, want refused by the credential bucket for <=100ms", ok, scope, wait)
	}
	if ok, _, _ := l.Allow("apikey:b", "t1"); !ok {
		t.Errorf("another credential was refused: buckets are not per credential")
	}
	c.t = c.t.Add(100 * time.Millisecond)
	if ok, _, _ := l.Allow("apikey:a", "t1"); !ok {
		t.Errorf("refused after the bucket refilled one token")
	}
}

// TestLimiter_RunawayDoesNotStarveOthers: one credential hammering its
// tenant is held to its rate while every other tenant's client gets all it
// asks for.
func TestLimiter_RunawayDoesNotStarveOthers(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := ratelimit.New(ratelimit.Config{CredentialRate: 100, CredentialBurst: 100, TenantRate: 1000, TenantBurst: 1000, Now: c.Now})
	var runawayOK, othersOK, othersAsked int
	for ms := range 1000 { // one second, in 1 ms steps
		c.t = c.t.Add(time.Millisecond)
		for range 50 { // the runaway: 50,000 requests per second
			if ok, _, _ := l.Allow("apikey:runaway", "noisy"); ok {
				runawayOK++
			}
		}
		if ms%10 == 0 { // ten other tenants, 100 requests per second each
			for tenant := range 10 {
				othersAsked++
				if ok, _, _ := l.Allow("apikey:quiet-"+string(rune('a'+tenant)), "quiet-"+string(rune('a'+tenant))); ok {
					othersOK++
				}
			}
		}
	}
	if runawayOK > 210 { // burst 100 + 100/s
		t.Errorf("the runaway got %d requests through in one second, want at most ~200", runawayOK)
	}
	if othersOK != othersAsked {
		t.Errorf("the other tenants got %d of %d requests through, want all", othersOK, othersAsked)
	}
}

func TestLimiter_TenantBucket(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := ratelimit.New(ratelimit.Config{TenantRate: 1, TenantBurst: 2, Now: c.Now})
	l.Allow("a", "t1")
	l.Allow("b", "t1")
	if ok, scope, _ := l.Allow("c", "t1"); ok || scope != "tenant" {
		t.Errorf("third request of the tenant = %v %q, want refused by the tenant bucket", ok, scope)
	}
	if ok, _, _ := l.Allow("c", "t2"); !ok {
		t.Errorf("another tenant was refused")
	}
}

func TestLimiter_RefusedRequestTakesNoToken(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := ratelimit.New(ratelimit.Config{CredentialRate: 1, CredentialBurst: 1, TenantRate: 1, TenantBurst: 1, Now: c.Now})
	if ok, _, _ := l.Allow("a", "t1"); !ok {
		t.Fatal("first request refused")
	}
	// b's credential bucket is full but t1's is empty: b must keep its token.
	if ok, scope, _ := l.Allow("b", "t1"); ok || scope != "tenant" {
		t.Fatalf("b on t1 = %v %q, want refused by the tenant", ok, scope)
	}
	if ok, _, _ := l.Allow("b", "t2"); !ok {
		t.Errorf("b was charged for a request that the tenant bucket refused")
	}
}

func TestLimiter_SweepDropsIdleBuckets(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := ratelimit.New(ratelimit.Config{CredentialRate: 10, CredentialBurst: 10, TenantRate: 10, TenantBurst: 10, IdleAfter: time.Minute, Now: c.Now})
	l.Allow("old", "t-old")
	c.t = c.t.Add(2 * time.Minute)
	l.Allow("new", "t-new")
	l.Sweep()
	if creds, tenants := l.Len(); creds != 1 || tenants != 1 {
		t.Errorf("after Sweep: %d credential and %d tenant buckets, want 1 and 1", creds, tenants)
	}
}

func BenchmarkLimiter_Allow(b *testing.B) {
	l := ratelimit.New(ratelimit.Config{CredentialRate: 1e9, CredentialBurst: 1e9, TenantRate: 1e9, TenantBurst: 1e9})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow("apikey:ak_0123456789abcdef", "tenant")
		}
	})
}
