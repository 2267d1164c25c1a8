package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADME_Notifications runs the README's Notifications example as
// pasted: a real dev server, `webhook add` through its admin socket, the
// example receiver built from examples/webhook-receiver and run as a
// process with the secret in its environment, a PUT, and the receiver's
// verified line, which must match the README's (each "..." standing for
// anything).
func TestREADME_Notifications(t *testing.T) {
	lines := readmeBlock(t, "## Notifications")
	receiverBin := filepath.Join(t.TempDir(), "webhook-receiver")
	if out, err := exec.Command("go", "build", "-o", receiverBin, "../../examples/webhook-receiver").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/webhook-receiver: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"neostore-secrets", "dev", "--listen", "127.0.0.1:0"}, env(nil), strings.NewReader(""), stdout, stderr)
	}()
	addr := waitServing(t, done, stderr)
	waitReady(t, http.DefaultClient, "http://"+addr, done, stderr)
	vars := map[string]string{}
	for _, l := range strings.Split(stdout.String(), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "nsk_") {
			vars["KEY"] = l
		}
		if v, ok := strings.CutPrefix(l, "--data "); ok {
			vars["DATA"] = v
		}
	}
	if vars["KEY"] == "" || vars["DATA"] == "" {
		t.Fatalf("dev printed no API key or data directory:\n%s", stdout.String())
	}
	// The receiver listens where the README's URL says, on a free port.
	receiverAddr := freeAddr(t)
	var received *syncBuffer

	ran := map[string]bool{}
	for _, line := range lines {
		if cmd, ok := strings.CutPrefix(line, "SECRET=$("); ok {
			cmd, ok = strings.CutSuffix(strings.TrimSpace(cmd), "| head -n 1)")
			if !ok {
				t.Fatalf("%s: want SECRET=$(... | head -n 1)", line)
			}
			out := runREADMELine(t, strings.ReplaceAll(cmd, "127.0.0.1:9000", receiverAddr), vars)
			vars["SECRET"] = strings.SplitN(out, "\n", 2)[0]
			ran["webhook add"] = true
			continue
		}
		words, comment, err := shellWords(line, vars)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		switch {
		case len(words) == 0 && strings.HasPrefix(comment, "the receiver prints: "):
			want := strings.TrimPrefix(comment, "the receiver prints: ")
			pattern := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(want), `\.\.\.`, `[^ ]*?`) + "$")
			waitForLine(t, received, pattern)
			ran["receiver"] = true
		case len(words) == 0:
		case strings.HasPrefix(words[0], "WEBHOOK_SECRET="):
			if len(words) < 4 || words[1] != "go" || words[2] != "run" || words[3] != "./examples/webhook-receiver" {
				t.Fatalf("%s: want WEBHOOK_SECRET=$SECRET go run ./examples/webhook-receiver ...", line)
			}
			args := strings.Fields(strings.ReplaceAll(strings.Join(words[4:], " "), "127.0.0.1:9000", receiverAddr))
			args = slicesDeleteAmp(args)
			received = startReceiver(t, receiverBin, strings.TrimPrefix(words[0], "WEBHOOK_SECRET="), args)
		case strings.Contains(words[0], "="): // KEY=, DATA=, ID=: set from what the commands printed
		case words[0] == "./neostore-secrets" && len(words) > 1 && words[1] == "dev":
		case words[0] == "curl":
			req, err := curlRequest(words)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			if req.URL.Host != "127.0.0.1:8200" {
				t.Fatalf("%s: the example talks to %s, not dev's default 127.0.0.1:8200", line, req.URL.Host)
			}
			if err := farExpiry(line); err != nil {
				t.Errorf("%s: %v", line, err)
			}
			req.URL.Host = addr
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Fatalf("%s\n  = %d %s", line, resp.StatusCode, body)
			}
			ran["curl"] = true
		case words[0] == "./neostore-secrets":
			out := runREADMELine(t, line, vars)
			if want, _, _ := strings.Cut(comment, " in "); want != "" && !strings.HasPrefix(out, want) {
				t.Errorf("%s\n  printed %q, the README says %q", line, out, comment)
			}
			if len(words) > 2 && words[1] == "webhook" {
				ran["webhook "+words[2]] = true
				if words[2] == "list" {
					vars["ID"] = regexp.MustCompile(`wh_[a-z2-7]{26}`).FindString(out)
				}
			}
		default:
			t.Fatalf("%s: this test does not know how to run it", line)
		}
	}
	for _, want := range []string{"webhook add", "receiver", "curl", "webhook list", "webhook test", "webhook deliveries"} {
		if !ran[want] {
			t.Errorf("the README's Notifications example has no %s step", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("dev returned %v", err)
	}
}

// slicesDeleteAmp drops a trailing "&": the README runs the receiver in
// the background, the test runs it as a child process.
func slicesDeleteAmp(args []string) []string {
	if n := len(args); n > 0 && args[n-1] == "&" {
		return args[:n-1]
	}
	return args
}

// runREADMELine runs a `./neostore-secrets ...` line in-process and
// returns its stdout; it must succeed.
func runREADMELine(t *testing.T, line string, vars map[string]string) string {
	t.Helper()
	words, _, err := shellWords(line, vars)
	if err != nil || len(words) == 0 || words[0] != "./neostore-secrets" {
		t.Fatalf("%s: not a neostore-secrets command (%v)", line, err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), append([]string{"neostore-secrets"}, words[1:]...), env(nil), strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", line, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// startReceiver runs the example receiver with secret in its environment
// and waits for its "listening on" line; its stdout is returned.
func startReceiver(t *testing.T, bin, secret string, args []string) *syncBuffer {
	t.Helper()
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("the receiver's secret %q is not what webhook add printed", secret)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret)
	out := &syncBuffer{}
	cmd.Stdout = out
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "listening on ") {
				ready <- sc.Text()
			}
		}
		close(ready)
	}()
	select {
	case l, ok := <-ready:
		if !ok {
			t.Fatalf("the receiver exited before it listened")
		}
		t.Log("receiver:", l)
	case <-time.After(20 * time.Second):
		t.Fatalf("the receiver did not listen within 20s")
	}
	return out
}

// waitForLine waits until out holds a line matching pattern.
func waitForLine(t *testing.T, out *syncBuffer, pattern *regexp.Regexp) {
	t.Helper()
	if out == nil {
		t.Fatalf("the README checks the receiver's output before it starts the receiver")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, l := range strings.Split(out.String(), "\n") {
			if pattern.MatchString(l) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver printed no line like %s within 15s:\n%s", pattern, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
