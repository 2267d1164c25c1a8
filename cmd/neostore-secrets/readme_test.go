package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"
)

// readmeBlock returns the indented code block that follows heading in
// README.md, with continuation lines joined.
func readmeBlock(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q", heading)
	}
	var lines []string
	started := false
	for _, l := range strings.Split(after, "\n") {
		code, isCode := strings.CutPrefix(l, "    ")
		if !isCode {
			if started {
				break
			}
			continue
		}
		started = true
		if n := len(lines); n > 0 && strings.HasSuffix(lines[n-1], "\\") {
			lines[n-1] = strings.TrimSuffix(lines[n-1], "\\") + " " + strings.TrimSpace(code)
			continue
		}
		lines = append(lines, code)
	}
	return lines
}

// shellWords splits a command line as sh would for the README's examples:
// single and double quotes, $NAME from vars, a # comment at a word's start.
func shellWords(line string, vars map[string]string) (words []string, comment string, err error) {
	var (
		w      strings.Builder
		inWord bool
		quote  rune
		runes  = []rune(line)
		expand = func(i int) int { // at '$': append the variable, return the index after its name
			j := i + 1
			for j < len(runes) && (unicode.IsLetter(runes[j]) || unicode.IsDigit(runes[j]) || runes[j] == '_') {
				j++
			}
			w.WriteString(vars[string(runes[i+1:j])])
			return j
		}
	)
	for i := 0; i < len(runes); {
		r := runes[i]
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				w.WriteRune(r)
			}
			i++
		case quote == '"':
			switch r {
			case '"':
				quote = 0
				i++
			case '$':
				i = expand(i)
			default:
				w.WriteRune(r)
				i++
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
			i++
		case r == '$':
			inWord = true
			i = expand(i)
		case r == '#' && !inWord:
			return words, strings.TrimSpace(string(runes[i+1:])), nil
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
			i++
		default:
			w.WriteRune(r)
			inWord = true
			i++
		}
	}
	if quote != 0 {
		return nil, "", fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, "", nil
}

// curlRequest turns the words of a curl command into the request it sends.
func curlRequest(words []string) (*http.Request, error) {
	if len(words) == 0 || words[0] != "curl" {
		return nil, fmt.Errorf("not a curl command: %q", words)
	}
	method, url, body := "", "", ""
	var headers []string
	for i := 1; i < len(words); i++ {
		switch words[i] {
		case "-i", "-s":
		case "-X", "-H", "-d":
			if i+1 == len(words) {
				return nil, fmt.Errorf("%s without a value", words[i])
			}
			v := words[i+1]
			switch words[i] {
			case "-X":
				method = v
			case "-H":
				headers = append(headers, v)
			case "-d":
				body = v
			}
			i++
		default:
			if strings.HasPrefix(words[i], "-") {
				return nil, fmt.Errorf("curl flag %s is not understood by this test", words[i])
			}
			url = words[i]
		}
	}
	if method == "" {
		method = http.MethodGet
		if body != "" {
			method = http.MethodPost
		}
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return nil, fmt.Errorf("header %q has no colon", h)
		}
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return req, nil
}

// TestREADME_APIExamples runs README's API examples, as pasted, against a
// real dev server: each must succeed, and where its comment shows the
// output, print that. It keeps the examples true for a newcomer: the tenant
// dev prints a key for, and dates that have not passed.
func TestREADME_APIExamples(t *testing.T) {
	lines := readmeBlock(t, "### The API")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"neostore-secrets", "dev", "--listen", "127.0.0.1:0"}, env(nil), strings.NewReader(""), stdout, stderr)
	}()
	addr := waitServing(t, done, stderr)
	waitReady(t, http.DefaultClient, "http://"+addr, done, stderr)
	var key string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "nsk_") {
			key = l
		}
	}
	if key == "" {
		t.Fatalf("dev printed no API key:\n%s", stdout.String())
	}

	ran := 0
	for _, line := range lines {
		words, comment, err := shellWords(line, map[string]string{"KEY": key})
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if len(words) == 0 || strings.HasPrefix(words[0], "KEY=") {
			continue
		}
		req, err := curlRequest(words)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if req.URL.Host != "127.0.0.1:8200" {
			t.Fatalf("%s: the example talks to %s, not dev's default 127.0.0.1:8200", line, req.URL.Host)
		}
		req.URL.Host = addr
		if err := farExpiry(line); err != nil {
			t.Errorf("%s: %v", line, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ran++
		if resp.StatusCode/100 != 2 {
			t.Errorf("%s\n  = %d %s", line, resp.StatusCode, body)
			continue
		}
		if want, _, _ := strings.Cut(comment, " "); want != "" && strings.TrimSpace(string(body)) != want {
			t.Errorf("%s\n  printed %q, the README says %q", line, body, want)
		}
	}
	if ran < 5 {
		t.Errorf("ran %d examples from the README's API section, want its 5 curl commands", ran)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("dev returned %v", err)
	}
}

// farExpiry refuses an example whose expiresOn is less than ten years away:
// pasted next year, it would store a secret that is already gone.
func farExpiry(line string) error {
	_, rest, ok := strings.Cut(line, `"expiresOn":"`)
	if !ok {
		return nil
	}
	value, _, _ := strings.Cut(rest, `"`)
	at, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return fmt.Errorf("expiresOn %q is not RFC 3339: %w", value, err)
	}
	if at.Before(time.Now().AddDate(10, 0, 0)) {
		return fmt.Errorf("expiresOn %s is less than ten years away; the example will stop working (use 2099-01-01T00:00:00Z)", value)
	}
	return nil
}
