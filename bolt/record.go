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
//	flags    1 byte  (flagNotBefore | flagExpiresOn)
//	for each bound whose flag is set, NotBefore first:
//	  seconds      8 bytes, big-endian int64, Unix time
//	  nanoseconds  4 bytes, big-endian, 0 to 999999999
//	ciphertext   the rest
//
// Unix seconds in an int64 span years 1 through 9999 and beyond, and the
// nanoseconds keep the instant exact, which a Unix-nanosecond int64 (years
// 1678 to 2262) could not.
const (
	recordVersion = 1

	flagNotBefore = 1 << 0
	flagExpiresOn = 1 << 1
	knownFlags    = flagNotBefore | flagExpiresOn

	boundSize = 8 + 4
)

// errCorruptRecord is wrapped by every decoding error, so that callers and
// tests can tell a damaged record from a failed transaction.
var errCorruptRecord = errors.New("corrupt secret record")

// encodeSecret returns a fresh buffer holding s; nothing in it aliases
// s.Ciphertext.
func encodeSecret(s neostore.SealedSecret) []byte {
	size := 2 + len(s.Ciphertext)
	var flags byte
	if s.Validity.NotBefore.Set {
		flags |= flagNotBefore
		size += boundSize
	}
	if s.Validity.ExpiresOn.Set {
		flags |= flagExpiresOn
		size += boundSize
	}
	buf := make([]byte, 0, size)
	buf = append(buf, recordVersion, flags)
	if s.Validity.NotBefore.Set {
		buf = appendTime(buf, s.Validity.NotBefore.At)
	}
	if s.Validity.ExpiresOn.Set {
		buf = appendTime(buf, s.Validity.ExpiresOn.At)
	}
	return append(buf, s.Ciphertext...)
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
	if data[0] != recordVersion {
		return s, fmt.Errorf("%w: unknown version %d", errCorruptRecord, data[0])
	}
	flags := data[1]
	if flags&^knownFlags != 0 {
		return s, fmt.Errorf("%w: unknown flags %#02x", errCorruptRecord, flags)
	}
	rest := data[2:]
	var err error
	if flags&flagNotBefore != 0 {
		if s.Validity.NotBefore, rest, err = decodeBound(rest); err != nil {
			return neostore.SealedSecret{}, fmt.Errorf("notBefore: %w", err)
		}
	}
	if flags&flagExpiresOn != 0 {
		if s.Validity.ExpiresOn, rest, err = decodeBound(rest); err != nil {
			return neostore.SealedSecret{}, fmt.Errorf("expiresOn: %w", err)
		}
	}
	s.Ciphertext = make([]byte, len(rest))
	copy(s.Ciphertext, rest)
	return s, nil
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
