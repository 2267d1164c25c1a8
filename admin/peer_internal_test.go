package admin

import (
	"strings"
	"testing"
)

func TestCheckPeer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		peer    uint32
		trusted []uint32
		ok      bool
	}{
		{"SameUser", 1000, []uint32{1000}, true},
		{"Root", 0, []uint32{1000}, true},
		{"DataDirOwner", 999, []uint32{0, 999}, true},
		{"OtherUser", 65534, []uint32{1000}, false},
		{"OtherUserAgainstRoot", 65534, []uint32{0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPeer(tc.peer, tc.trusted...)
			if (err == nil) != tc.ok {
				t.Fatalf("checkPeer(%d, %v) = %v, want ok=%v", tc.peer, tc.trusted, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "uid 65534") {
				t.Errorf("the error %q does not name the peer's uid", err)
			}
		})
	}
}

func TestCheckPeer_MessageNamesWhoMay(t *testing.T) {
	for _, tc := range []struct {
		trusted []uint32
		want    string
	}{
		{[]uint32{0}, "uid 65534, but only root may"},
		{[]uint32{1000, 0, 1000}, "uid 65534, but only uid 1000 or root may"},
		{[]uint32{1000, 999}, "only uid 1000, 999 or root may"},
	} {
		if err := checkPeer(65534, tc.trusted...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkPeer(65534, %v) = %v, want it to say %q", tc.trusted, err, tc.want)
		}
	}
}
