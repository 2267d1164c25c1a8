package audit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/neostore/neostore-secrets"
)

// Filter selects records in Search. Empty fields and zero times match
// everything; set fields must all match.
type Filter struct {
	Tenant    string
	Key       string
	Principal string // matches the principal's id, sub or client id
	Op        string
	Since     time.Time // records at or after
	Until     time.Time // records before
}

// Match reports whether l passes f.
func (f *Filter) Match(l *Line) bool {
	r := &l.Record
	p := &r.Principal
	switch {
	case f.Tenant != "" && r.Tenant != f.Tenant,
		f.Key != "" && r.Key != f.Key,
		f.Op != "" && r.Op != f.Op,
		f.Principal != "" && p.ID != f.Principal && p.Subject != f.Principal && p.ClientID != f.Principal,
		!f.Since.IsZero() && r.Time.Before(f.Since),
		!f.Until.IsZero() && !r.Time.Before(f.Until):
		return false
	}
	return true
}

// Search calls fn with every record in the files at paths (in that order)
// that f matches, stopping at and returning fn's first error. It does not
// verify the chain, which takes the key (see Verify), and skips lines that
// are not records. The Line passed to fn is its own: fn may keep it.
func Search(paths []string, f Filter, fn func(Line) error) error {
	for _, path := range paths {
		file, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("audit: open file: %w", err)
		}
		err = search(file, path, &f, fn)
		file.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// SearchReader is Search over one stream, named name in the lines it yields.
func SearchReader(r io.Reader, name string, f Filter, fn func(Line) error) error {
	return search(r, name, &f, fn)
}

func search(r io.Reader, name string, f *Filter, fn func(Line) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for n := 1; ; n++ {
		line, _, tooLong, err := readLine(br, buf)
		if err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("audit: read %s: %w", name, err)
		}
		buf = line[:0]
		if tooLong {
			continue
		}
		l, err := ParseLine(line)
		if err != nil || !f.Match(&l) {
			continue
		}
		l.Raw, l.File, l.LineNo = bytes.Clone(line), name, n
		if err := fn(l); err != nil {
			return err
		}
	}
}

// WriteTable writes lines as an aligned text table for a terminal. Text
// from the records is shown with control and bidirectional-override
// characters replaced, so a crafted user agent or key name cannot drive the
// terminal.
func WriteTable(w io.Writer, lines []Line) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tNODE\tSEQ\tOP\tTENANT\tKEY\tPRINCIPAL\tSTATUS\tCLIENT\tDURATION")
	for i := range lines {
		l := &lines[i]
		r := &l.Record
		status := strconv.Itoa(r.Status)
		if r.ErrorCode != "" {
			status += " " + r.ErrorCode
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Time.Format(time.RFC3339Nano), printable(l.Node), l.Seq, printable(r.Op),
			orDash(r.Tenant), orDash(r.Key), principalText(r), printable(status),
			orDash(r.ClientAddr), r.Duration)
	}
	return tw.Flush()
}

func principalText(r *neostore.AuditRecord) string {
	p := &r.Principal
	who := p.ID
	if who == "" {
		who = p.Subject
	}
	if who == "" {
		who = p.ClientID
	}
	s := p.Kind
	if who != "" {
		s += ":" + who
	}
	if p.Name != "" {
		s += " (" + p.Name + ")"
	}
	return orDash(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return printable(s)
}

// printable replaces the characters of s that a terminal would act on.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return '?'
		}
		return r
	}, s)
}
