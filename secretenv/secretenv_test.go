package secretenv_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/neostore/neostore-secrets/secretenv"
)

func TestName(t *testing.T) {
	for key, want := range map[string]string{
		"db-password": "DB_PASSWORD",
		"API-Key":     "API_KEY",
		"x":           "X",
		"9lives":      "9LIVES",
	} {
		if got := secretenv.Name(key); got != want {
			t.Errorf("Name(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"DB_PASSWORD": true, "_x": true, "a1": true,
		"": false, "9LIVES": false, "A-B": false, "A=B": false, "É": false, "A B": false,
	} {
		if got := secretenv.ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestPlan(t *testing.T) {
	t.Run("DefaultNamesAndRenames", func(t *testing.T) {
		vars, err := secretenv.Plan([]string{"db-password", "api-key", "9lives"}, map[string]string{"PGPASSWORD": "db-password", "LIVES": "9lives"})
		if err != nil {
			t.Fatal(err)
		}
		want := []secretenv.Var{{"API_KEY", "api-key"}, {"LIVES", "9lives"}, {"PGPASSWORD", "db-password"}}
		if len(vars) != len(want) {
			t.Fatalf("Plan = %v, want %v", vars, want)
		}
		for i := range want {
			if vars[i] != want[i] {
				t.Errorf("Plan[%d] = %v, want %v", i, vars[i], want[i])
			}
		}
	})
	for _, tc := range []struct {
		name     string
		keys     []string
		explicit map[string]string
		want     string
	}{
		{"Collision", []string{"db-password", "DB-PASSWORD"}, nil, `"DB-PASSWORD" and "db-password" both map to DB_PASSWORD`},
		{"CollisionWithRename", []string{"a", "b"}, map[string]string{"A": "b"}, "both map to A"},
		{"InvalidDefaultName", []string{"9lives"}, nil, `"9LIVES", which is not a valid variable name`},
		{"InvalidExplicitName", []string{"a"}, map[string]string{"A-B": "a"}, `"A-B" is not a valid variable name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := secretenv.Plan(tc.keys, tc.explicit)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Plan = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestEnviron(t *testing.T) {
	vars := []secretenv.Var{{"A", "a"}, {"B", "b"}}
	env, err := secretenv.Environ(vars, map[string][]byte{"a": []byte("1=2"), "b": []byte("")})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(env, " ") != "A=1=2 B=" {
		t.Errorf("Environ = %q", env)
	}
	const value = "hunter\x002"
	_, err = secretenv.Environ(vars, map[string][]byte{"a": []byte(value), "b": nil})
	if err == nil || !strings.Contains(err.Error(), `"a"`) || strings.Contains(err.Error(), "hunter") {
		t.Errorf("Environ with a NUL = %v, want an error naming the key and not the value", err)
	}
	if _, err := secretenv.Environ(vars, map[string][]byte{"a": nil}); err == nil {
		t.Errorf("Environ with a missing value succeeded")
	}
}

func TestMerge(t *testing.T) {
	got := secretenv.Merge([]string{"PATH=/bin", "A=old", "HOME=/root"}, []string{"A=new"})
	if strings.Join(got, " ") != "PATH=/bin HOME=/root A=new" {
		t.Errorf("Merge = %q", got)
	}
}

var hardValues = []string{
	"", "plain", "with space", "it's", `back\slash`, "line\nbreak\r\n", `"quoted"`, `a'"`, `tail\`,
	"$HOME and ${HOME}", "#not a comment", "tab\there", "ünïcødé", "=", `\n literal`,
}

func TestRender_Dotenv_RoundTrips(t *testing.T) {
	var vars []secretenv.Var
	values := map[string][]byte{}
	for i, v := range hardValues {
		key := "k" + string(rune('a'+i))
		vars = append(vars, secretenv.Var{Name: secretenv.Name(key), Key: key})
		values[key] = []byte(v)
	}
	out, err := secretenv.Render(secretenv.Dotenv, vars, values)
	if err != nil {
		t.Fatal(err)
	}
	got, err := secretenv.ParseDotenv(out)
	if err != nil {
		t.Fatalf("ParseDotenv: %v\n%s", err, out)
	}
	for _, v := range vars {
		if got[v.Name] != string(values[v.Key]) {
			t.Errorf("%s = %q after the round trip, want %q", v.Name, got[v.Name], values[v.Key])
		}
	}
	if !strings.Contains(string(out), "KA=''\nKB='plain'\n") {
		t.Errorf("plain values are not single-quoted:\n%s", out)
	}
}

func TestRender_JSON(t *testing.T) {
	vars := []secretenv.Var{{"A", "a"}, {"B", "b"}}
	out, err := secretenv.Render(secretenv.JSON, vars, map[string][]byte{"a": []byte("x\"y"), "b": []byte("<&>")})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got["A"] != "x\"y" || got["B"] != "<&>" || len(got) != 2 {
		t.Errorf("JSON = %s", out)
	}
	if _, err := secretenv.Render(secretenv.JSON, vars, map[string][]byte{"a": {0xff}, "b": nil}); err == nil {
		t.Errorf("Render JSON of invalid UTF-8 succeeded")
	}
}

// FuzzQuoteDotenv: every value without NUL reads back unchanged, and a line
// never breaks.
func FuzzQuoteDotenv(f *testing.F) {
	for _, v := range hardValues {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, value string) {
		if strings.IndexByte(value, 0) >= 0 {
			return
		}
		line := "X=" + secretenv.QuoteDotenv(value) + "\n"
		if strings.Count(line, "\n") != 1 || strings.Contains(line, "\r") {
			t.Fatalf("quoted value spans lines: %q", line)
		}
		got, err := secretenv.ParseDotenv([]byte(line))
		if err != nil {
			t.Fatalf("ParseDotenv(%q): %v", line, err)
		}
		if got["X"] != value {
			t.Fatalf("round trip of %q gave %q", value, got["X"])
		}
	})
}
