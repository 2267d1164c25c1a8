package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5"
)

// textsScratch is the scratch space of collectTexts, kept in
// Store.textsScratch and reused across calls, so that a listing grows no
// buffer of its own once the pool holds one of its size.
type textsScratch struct {
	bytes []byte
	ends  []int
}

// maxPooledTexts bounds the scratch kept for reuse: a listing of a huge
// chunk (ListSecretKeys of a whole large tenant) is not held on to.
const maxPooledTexts = 1 << 20

// collectTexts reads rows of one non-NULL text column into a non-nil
// slice. The strings share one backing array, copied once from the rows'
// raw bytes (a text value's binary and text formats are both its UTF-8
// bytes): two allocations per call instead of pgx.RowTo's two per row and
// its per-row scan plan, which were most of a 1,000-key listing's CPU
// time in the server. Keeping any one of the strings keeps the whole
// array, which is the size of the listing.
func (s *Store) collectTexts(rows pgx.Rows) ([]string, error) {
	defer rows.Close()
	sc, _ := s.textsScratch.Get().(*textsScratch)
	if sc == nil {
		sc = new(textsScratch)
	}
	defer func() {
		if cap(sc.bytes) <= maxPooledTexts {
			sc.bytes, sc.ends = sc.bytes[:0], sc.ends[:0]
			s.textsScratch.Put(sc)
		}
	}()
	for rows.Next() {
		raw := rows.RawValues()
		if len(raw) != 1 || raw[0] == nil {
			return nil, errors.New("corrupt row: want one non-NULL text column")
		}
		sc.bytes = append(sc.bytes, raw[0]...)
		sc.ends = append(sc.ends, len(sc.bytes))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	all := string(sc.bytes)
	texts := make([]string, len(sc.ends))
	start := 0
	for i, end := range sc.ends {
		texts[i] = all[start:end]
		start = end
	}
	return texts, nil
}
