package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/neostore/neostore-secrets"
)

// A secret record is
//
//	version  1 byte  (recordVersion)
//	flags    1 byte  (flagNotBefore | flagExpiresOn | flagCreatedOn | flagUpdatedOn)
//	for each time whose flag is set, in that order:
//	  seconds      8 bytes, big-endian int64, Unix time
//	  nanoseconds  4 bytes, big-endian, 0 to 999999999
//	ciphertext   the rest
//
// Version 1 records, written before the times were kept, have the same
// layout without the two time flags; they still decode, with both times
// unknown, and the next put of the key writes version 2.
//
// Unix seconds in an int64 span years 1 through 9999 and beyond, and the
// nanoseconds keep the instant exact, which a Unix-nanosecond int64 (years
// 1678 to 2262) could not.
const (
	recordVersion   = 2
	recordVersionV1 = 1 // no times

	flagNotBefore = 1 << 0
	flagExpiresOn = 1 << 1
	flagCreatedOn = 1 << 2
	flagUpdatedOn = 1 << 3
	knownFlagsV1  = flagNotBefore | flagExpiresOn
	knownFlags    = knownFlagsV1 | flagCreatedOn | flagUpdatedOn

	boundSize = 8 + 4
)

// errCorruptRecord is wrapped by every decoding error, so that callers and
// tests can tell a damaged record from a failed transaction.
var errCorruptRecord = errors.New("corrupt secret record")

// encodeSecret returns a fresh buffer holding s; nothing in it aliases
// s.Ciphertext.
func encodeSecret(s neostore.SealedSecret) []byte {
	times := recordTimes(s)
	size := 2 + len(s.Ciphertext)
	var flags byte
	for i, b := range times {
		if b.Set {
			flags |= 1 << i
			size += boundSize
		}
	}
	buf := make([]byte, 0, size)
	buf = append(buf, recordVersion, flags)
	for _, b := range times {
		if b.Set {
			buf = appendTime(buf, b.At)
		}
	}
	return append(buf, s.Ciphertext...)
}

// recordTimes lists the times of s in record order, flag bit i for index i.
func recordTimes(s neostore.SealedSecret) [4]neostore.Bound {
	return [4]neostore.Bound{s.Validity.NotBefore, s.Validity.ExpiresOn, s.Times.CreatedOn, s.Times.UpdatedOn}
}

func appendTime(buf []byte, t time.Time) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(buf, uint32(t.Nanosecond()))
}

// decodeSecret parses a record. It never panics on malformed input, and the
// returned ciphertext is a copy: data may be memory that bbolt reclaims when
// the transaction ends.
func decodeSecret(data []byte) (neostore.SealedSecret, error) {
	var s neostore.SealedSecret
	if len(data) < 2 {
		return s, fmt.Errorf("%w: %d bytes, shorter than its header", errCorruptRecord, len(data))
	}
	s, rest, err := decodeHeader(data)
	if err != nil {
		return neostore.SealedSecret{}, err
	}
	s.Ciphertext = make([]byte, len(rest))
	copy(s.Ciphertext, rest)
	return s, nil
}

// decodeHeader parses everything of a record but the ciphertext, which it
// returns unparsed and uncopied (listing attributes needs no copy of it).
func decodeHeader(data []byte) (neostore.SealedSecret, []byte, error) {
	var s neostore.SealedSecret
	if len(data) < 2 {
		return s, nil, fmt.Errorf("%w: %d bytes, shorter than its header", errCorruptRecord, len(data))
	}
	known := byte(knownFlags)
	switch data[0] {
	case recordVersion:
	case recordVersionV1:
		known = knownFlagsV1
	default:
		return s, nil, fmt.Errorf("%w: unknown version %d", errCorruptRecord, data[0])
	}
	flags := data[1]
	if flags&^known != 0 {
		return s, nil, fmt.Errorf("%w: unknown flags %#02x", errCorruptRecord, flags)
	}
	rest := data[2:]
	fields := [4]struct {
		name string
		dst  *neostore.Bound
	}{
		{"notBefore", &s.Validity.NotBefore},
		{"expiresOn", &s.Validity.ExpiresOn},
		{"createdOn", &s.Times.CreatedOn},
		{"updatedOn", &s.Times.UpdatedOn},
	}
	for i, f := range fields {
		if flags&(1<<i) == 0 {
			continue
		}
		var err error
		if *f.dst, rest, err = decodeBound(rest); err != nil {
			return neostore.SealedSecret{}, nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return s, rest, nil
}

func decodeBound(data []byte) (neostore.Bound, []byte, error) {
	if len(data) < boundSize {
		return neostore.Bound{}, nil, fmt.Errorf("%w: bound truncated", errCorruptRecord)
	}
	sec := int64(binary.BigEndian.Uint64(data))
	nsec := binary.BigEndian.Uint32(data[8:])
	if nsec >= 1e9 {
		return neostore.Bound{}, nil, fmt.Errorf("%w: nanoseconds out of range", errCorruptRecord)
	}
	return neostore.At(time.Unix(sec, int64(nsec))), data[boundSize:], nil
}
