// Package secretenv turns secrets into a child process's environment: the
// variable name of each secret key, checked for collisions before anything
// runs, and the dotenv and JSON files that `run --mount` writes. It never
// puts a value into an error.
package secretenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Name returns the environment variable a secret key maps to by default:
// upper case, hyphens as underscores (db-password is DB_PASSWORD).
func Name(key string) string {
	return strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// ValidName reports whether name is a portable environment variable name:
// an ASCII letter or underscore, then letters, digits and underscores
// (POSIX's rule; a shell cannot read anything else).
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Var is one environment variable and the secret key it takes its value from.
type Var struct {
	Name string
	Key  string
}

// Plan maps secret keys to variable names: every key in keys gets its
// default Name unless explicit names one for it (name → key); a key named in
// explicit may get several variables. It returns the variables sorted by
// name, or an error when two of them would have the same name or a name is
// not a valid variable name. The error names keys and variables, never values.
func Plan(keys []string, explicit map[string]string) ([]Var, error) {
	renamed := make(map[string]bool, len(explicit))
	for _, key := range explicit {
		renamed[key] = true
	}
	owner := make(map[string]string) // variable name → key
	var vars []Var
	var errs []error
	add := func(name, key string, byHand bool) {
		if !ValidName(name) {
			if byHand {
				errs = append(errs, fmt.Errorf("--env %s=%s: %q is not a valid variable name", name, key, name))
			} else {
				errs = append(errs, fmt.Errorf("secret %q maps to %q, which is not a valid variable name; name it with --env NAME=%s", key, name, key))
			}
			return
		}
		if other, ok := owner[name]; ok {
			if other != key {
				errs = append(errs, fmt.Errorf("secrets %q and %q both map to %s; rename one with --env NAME=key", other, key, name))
			}
			return
		}
		owner[name] = key
		vars = append(vars, Var{Name: name, Key: key})
	}
	for _, name := range slices.Sorted(maps.Keys(explicit)) {
		add(name, explicit[name], true)
	}
	for _, key := range slices.Sorted(slices.Values(keys)) {
		if !renamed[key] {
			add(Name(key), key, false)
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(vars, func(a, b Var) int { return strings.Compare(a.Name, b.Name) })
	return vars, nil
}

// Environ returns the variables as NAME=value strings for exec.Cmd.Env,
// taking each value from values (key → value). It fails, naming the key,
// when a value is missing or holds a NUL byte, which no environment can carry.
func Environ(vars []Var, values map[string][]byte) ([]string, error) {
	env := make([]string, 0, len(vars))
	for _, v := range vars {
		value, ok := values[v.Key]
		if !ok {
			return nil, fmt.Errorf("secret %q has no value", v.Key)
		}
		if bytes.IndexByte(value, 0) >= 0 {
			return nil, fmt.Errorf("secret %q holds a NUL byte, which an environment variable cannot carry", v.Key)
		}
		env = append(env, v.Name+"="+string(value))
	}
	return env, nil
}

// Merge returns base with the variables of overlay added, an overlay
// variable replacing a base variable of the same name.
func Merge(base, overlay []string) []string {
	set := make(map[string]bool, len(overlay))
	for _, kv := range overlay {
		name, _, _ := strings.Cut(kv, "=")
		set[name] = true
	}
	out := make([]string, 0, len(base)+len(overlay))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if !set[name] {
			out = append(out, kv)
		}
	}
	return append(out, overlay...)
}

// Format is a file format for Render.
type Format string

// The formats of Render.
const (
	Dotenv Format = "dotenv" // NAME='value' lines, read by dotenv loaders
	JSON   Format = "json"   // one object, variable name → value
)

// ParseFormat returns the Format named s.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case Dotenv, JSON:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown format %q (want dotenv or json)", s)
}

// Render writes the variables with their values in format f. A value that
// is not valid UTF-8 cannot be put in JSON and is an error naming its key.
func Render(f Format, vars []Var, values map[string][]byte) ([]byte, error) {
	env, err := Environ(vars, values)
	if err != nil {
		return nil, err
	}
	switch f {
	case Dotenv:
		var b bytes.Buffer
		for _, kv := range env {
			name, value, _ := strings.Cut(kv, "=")
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(QuoteDotenv(value))
			b.WriteByte('\n')
		}
		return b.Bytes(), nil
	case JSON:
		obj := make(map[string]string, len(env))
		for i, kv := range env {
			name, value, _ := strings.Cut(kv, "=")
			if !utf8.ValidString(value) {
				return nil, fmt.Errorf("secret %q is not valid UTF-8 and cannot be written as JSON", vars[i].Key)
			}
			obj[name] = value
		}
		out, err := json.MarshalIndent(obj, "", "  ")
		if err != nil {
			return nil, err
		}
		return append(out, '\n'), nil
	}
	return nil, fmt.Errorf("unknown format %q", f)
}

// QuoteDotenv quotes a value for a dotenv file so that it reads back
// unchanged. A value without a single quote, backslash or line break goes in
// single quotes, which every dotenv loader (and a POSIX shell) takes
// literally; any other value goes in double quotes with \\, \", \n, \r and \$
// escaped, which dotenv loaders such as godotenv undo without expanding
// variables.
func QuoteDotenv(value string) string {
	if !strings.ContainsAny(value, "'\\\n\r") {
		return "'" + value + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\', '"', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ParseDotenv reads what Render writes in the Dotenv format (one NAME=value
// line each, the value quoted as QuoteDotenv quotes it) and returns the
// variables. It is the reference the file format is tested against.
func ParseDotenv(data []byte) (map[string]string, error) {
	out := make(map[string]string)
	lines := strings.Split(string(data), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, line := range lines {
		name, quoted, ok := strings.Cut(line, "=")
		if !ok || !ValidName(name) {
			return nil, fmt.Errorf("line %d: want NAME=value", i+1)
		}
		value, err := unquote(quoted)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out[name] = value
	}
	return out, nil
}

func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != s[len(s)-1] {
		return "", errors.New("value not quoted")
	}
	inner := s[1 : len(s)-1]
	switch s[0] {
	case '\'':
		if strings.ContainsAny(inner, "'\n\r") {
			return "", errors.New("bad single-quoted value")
		}
		return inner, nil
	case '"':
		var b strings.Builder
		for i := 0; i < len(inner); i++ {
			c := inner[i]
			if c == '"' {
				return "", errors.New("unescaped quote")
			}
			if c != '\\' {
				b.WriteByte(c)
				continue
			}
			if i++; i == len(inner) {
				return "", errors.New("dangling backslash")
			}
			switch e := inner[i]; e {
			case '\\', '"', '$':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			default:
				return "", errors.New("unknown escape")
			}
		}
		return b.String(), nil
	}
	return "", errors.New("value not quoted")
}
