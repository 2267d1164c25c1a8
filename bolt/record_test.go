package bolt

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets"
)

func TestRecord_RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		sec  neostore.SealedSecret
	}{
		{"Empty", neostore.SealedSecret{}},
		{"CiphertextOnly", neostore.SealedSecret{Ciphertext: []byte{0, 1, 2, 0xff}}},
		{"YearOne", neostore.SealedSecret{Validity: neostore.Validity{NotBefore: neostore.At(time.Time{})}}},
		{"Year9999", neostore.SealedSecret{Validity: neostore.Validity{
			ExpiresOn: neostore.At(time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)),
		}}},
		{"BeforeUnixEpochWithNanos", neostore.SealedSecret{Ciphertext: []byte("x"), Validity: neostore.Validity{
			NotBefore: neostore.At(time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC)),
			ExpiresOn: neostore.At(time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC)),
		}}},
		{"Times", neostore.SealedSecret{Ciphertext: []byte("x"), Times: neostore.SecretTimes{
			CreatedOn: neostore.At(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)),
			UpdatedOn: neostore.At(time.Date(2026, 2, 3, 4, 5, 6, 7, time.UTC)),
		}}},
		{"EverythingSet", neostore.SealedSecret{Ciphertext: []byte("x"),
			Validity: neostore.Validity{NotBefore: neostore.At(time.Unix(1, 0)), ExpiresOn: neostore.At(time.Unix(2, 0))},
			Times:    neostore.SecretTimes{CreatedOn: neostore.At(time.Unix(3, 0)), UpdatedOn: neostore.At(time.Unix(4, 5))},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := encodeSecret(tt.sec)
			got, err := decodeSecret(data)
			if err != nil {
				t.Fatalf("decodeSecret(encodeSecret(s)): %v", err)
			}
			if !bytes.Equal(got.Ciphertext, tt.sec.Ciphertext) {
				t.Errorf("Ciphertext = %x, want %x", got.Ciphertext, tt.sec.Ciphertext)
			}
			for _, b := range []struct {
				name      string
				got, want neostore.Bound
			}{
				{"NotBefore", got.Validity.NotBefore, tt.sec.Validity.NotBefore},
				{"ExpiresOn", got.Validity.ExpiresOn, tt.sec.Validity.ExpiresOn},
				{"CreatedOn", got.Times.CreatedOn, tt.sec.Times.CreatedOn},
				{"UpdatedOn", got.Times.UpdatedOn, tt.sec.Times.UpdatedOn},
			} {
				if b.got.Set != b.want.Set || !b.got.At.Equal(b.want.At) || b.got.At.Location() != time.UTC {
					t.Errorf("%s = %+v, want %+v in UTC", b.name, b.got, b.want)
				}
			}
		})
	}
}

func TestRecord_Layout(t *testing.T) {
	// Pinned bytes: changing the layout without a new version byte would
	// misread every existing file.
	got := encodeSecret(neostore.SealedSecret{
		Ciphertext: []byte("ct"),
		Validity:   neostore.Validity{ExpiresOn: neostore.At(time.Unix(1, 2))},
	})
	want := []byte{
		2,                      // version
		0x02,                   // flags: ExpiresOn
		0, 0, 0, 0, 0, 0, 0, 1, // seconds
		0, 0, 0, 2, // nanoseconds
		'c', 't',
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encodeSecret = %v, want %v", got, want)
	}
	got = encodeSecret(neostore.SealedSecret{
		Ciphertext: []byte("ct"),
		Validity:   neostore.Validity{NotBefore: neostore.At(time.Unix(1, 2))},
		Times:      neostore.SecretTimes{UpdatedOn: neostore.At(time.Unix(3, 4))},
	})
	want = []byte{
		2,                      // version
		0x09,                   // flags: NotBefore, UpdatedOn
		0, 0, 0, 0, 0, 0, 0, 1, // NotBefore seconds
		0, 0, 0, 2, // nanoseconds
		0, 0, 0, 0, 0, 0, 0, 3, // UpdatedOn seconds
		0, 0, 0, 4, // nanoseconds
		'c', 't',
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encodeSecret with times = %v, want %v", got, want)
	}
}

// A version 1 record, as every file written before the times were kept
// holds them, still decodes: its window and ciphertext, times unknown.
func TestRecord_DecodesVersion1(t *testing.T) {
	v1 := []byte{
		1,                      // version 1
		0x03,                   // flags: NotBefore, ExpiresOn
		0, 0, 0, 0, 0, 0, 0, 1, // NotBefore seconds
		0, 0, 0, 2, // nanoseconds
		0, 0, 0, 0, 0, 0, 0, 3, // ExpiresOn seconds
		0, 0, 0, 4, // nanoseconds
		'c', 't',
	}
	got, err := decodeSecret(v1)
	if err != nil {
		t.Fatalf("decodeSecret(version 1): %v", err)
	}
	if string(got.Ciphertext) != "ct" ||
		!got.Validity.NotBefore.At.Equal(time.Unix(1, 2)) || !got.Validity.ExpiresOn.At.Equal(time.Unix(3, 4)) ||
		got.Times.CreatedOn.Set || got.Times.UpdatedOn.Set {
		t.Errorf("decodeSecret(version 1) = %+v, want ct valid from 1.000000002 to 3.000000004, times unknown", got)
	}
}

func TestRecord_Corrupt(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"Empty", []byte{}},
		{"VersionOnly", []byte{1}},
		{"UnknownVersion", []byte{3, 0, 'c', 't'}},
		{"VersionZero", []byte{0, 0}},
		{"UnknownFlags", []byte{2, 0x10}},
		{"TimeFlagInVersion1", []byte{1, flagCreatedOn, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"UpdatedOnTruncated", []byte{2, flagUpdatedOn, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"NotBeforeTruncated", []byte{1, flagNotBefore, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}},
		{"ExpiresOnMissing", []byte{1, flagNotBefore | flagExpiresOn, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"NanosecondsOutOfRange", []byte{1, flagExpiresOn, 0, 0, 0, 0, 0, 0, 0, 1, 0x3b, 0x9a, 0xca, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeSecret(tt.data)
			if !errors.Is(err, errCorruptRecord) {
				t.Errorf("decodeSecret(%v) error = %v, want errCorruptRecord", tt.data, err)
			}
		})
	}
}

func FuzzDecodeSecret(f *testing.F) {
	for _, s := range []neostore.SealedSecret{
		{},
		{Ciphertext: []byte("ciphertext")},
		{Ciphertext: []byte{0}, Validity: neostore.Validity{NotBefore: neostore.At(time.Time{})}},
		{Validity: neostore.Validity{
			NotBefore: neostore.At(time.Unix(math.MinInt64, 0)),
			ExpiresOn: neostore.At(time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)),
		}},
	} {
		f.Add(encodeSecret(s))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0xff})
	f.Add([]byte{1, flagNotBefore, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 'c'})
	f.Add([]byte{1, flagExpiresOn, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, data []byte) {
		sec, err := decodeSecret(data)
		if err != nil {
			if !errors.Is(err, errCorruptRecord) {
				t.Fatalf("decodeSecret error %v does not wrap errCorruptRecord", err)
			}
			return
		}
		// A record that decodes is canonical: encoding it again gives the
		// same bytes, so nothing was dropped or reinterpreted. A version 1
		// record comes back as version 2 with the same fields.
		again := encodeSecret(sec)
		if data[0] == recordVersionV1 {
			again[0] = recordVersionV1
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("encodeSecret(decodeSecret(%x)) = %x", data, again)
		}
		// The ciphertext is a copy: bbolt reclaims data after the
		// transaction.
		if len(sec.Ciphertext) > 0 {
			before := bytes.Clone(sec.Ciphertext)
			for i := range data {
				data[i] ^= 0xff
			}
			if !bytes.Equal(sec.Ciphertext, before) {
				t.Fatalf("decoded ciphertext aliases the record")
			}
		}
	})
}
