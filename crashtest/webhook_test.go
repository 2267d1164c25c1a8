package main

import (
	"testing"
)

func TestExpectedEvents(t *testing.T) {
	// c: created, u: updated (not created), d: deleted.
	tests := []struct {
		ops  string
		want []eventCounts
	}{
		{"", []eventCounts{{}}},
		{"put", []eventCounts{{created: 1}}},
		{"put put", []eventCounts{{created: 1, updated: 1}}},
		{"put del", []eventCounts{{created: 1, deleted: 1}}},
		// A DELETE that finds nothing makes no event.
		{"del", []eventCounts{{}}},
		{"put del del put", []eventCounts{{created: 2, deleted: 1}}},
		// An unanswered operation may or may not have happened, and what
		// follows depends on it.
		{"put?", []eventCounts{{}, {created: 1}}},
		{"put del? put", []eventCounts{{created: 1, updated: 1}, {created: 2, deleted: 1}}},
		{"del? put", []eventCounts{{created: 1}}},
	}
	for _, tc := range tests {
		m := replay(t, tc.ops)
		got := expected(m.ops)
		if len(got) != len(tc.want) {
			t.Errorf("%q: allowed %v, want %v", tc.ops, got, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !got[w] {
				t.Errorf("%q: allowed %v, want %v among them", tc.ops, got, w)
			}
		}
	}
}

func TestShortfall(t *testing.T) {
	missing, extra := shortfall(eventCounts{created: 2, updated: 3, deleted: 1}, eventCounts{created: 2, updated: 1, deleted: 2})
	if missing != 2 || extra != 1 {
		t.Fatalf("shortfall = %d missing, %d extra; want 2, 1", missing, extra)
	}
}
