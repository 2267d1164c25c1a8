// Command flood is the benchmark kit's load for the server's limits
// (issue 11): it holds many idle connections from one address, or lists a
// tenant from many clients at once, and reports what it saw.
//
//	flood idle  -addr HOST:PORT [-from IP] [-conns N] [-hold D] [-reopen=false]
//	            opens N connections from IP, sends one GET /healthz on each
//	            and keeps it open and idle (a keep-alive), reopening any the
//	            server closes (unless -reopen=false), for D; prints how many
//	            are held, refused and reopened every second.
//	flood probe -url URL [-from IP] [-n N]
//	            GETs URL N times over fresh connections (API key in
//	            BENCH_API_KEY) and prints each status and latency, and the
//	            slowest.
//	flood list  -url URL [-c C] [-rounds R]
//	            C clients GET URL (a list) R times each, in parallel (API key
//	            in BENCH_API_KEY); prints the statuses, bytes and the time.
//
// Nothing here prints an API key.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("want idle, probe or list")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	switch args[0] {
	case "idle":
		addr := fs.String("addr", "127.0.0.1:8200", "server address")
		from := fs.String("from", "127.0.0.2", "local address to connect from")
		conns := fs.Int("conns", 20000, "connections to hold")
		hold := fs.Duration("hold", time.Minute, "how long to hold them")
		reopen := fs.Bool("reopen", true, "reopen a connection the server refused or closed (100 ms later; 1 s after a failed dial)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return idle(ctx, *addr, *from, *conns, *hold, *reopen, out)
	case "probe":
		url := fs.String("url", "", "URL to GET")
		from := fs.String("from", "127.0.0.1", "local address to connect from")
		n := fs.Int("n", 10, "requests")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return probe(*url, *from, *n, os.Getenv("BENCH_API_KEY"), out)
	case "list":
		url := fs.String("url", "", "list URL")
		c := fs.Int("c", 200, "concurrent clients")
		rounds := fs.Int("rounds", 3, "lists per client")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return list(*url, *c, *rounds, os.Getenv("BENCH_API_KEY"), out)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// idle holds n keep-alive connections from the address from.
func idle(ctx context.Context, addr, from string, n int, hold time.Duration, reopen bool, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, hold)
	defer cancel()
	var held, refused, reopened atomic.Int64
	var lastErr atomic.Value // string
	dialer := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	one := func() {
		for first := true; ctx.Err() == nil; first = false {
			if !first {
				if !reopen {
					<-ctx.Done()
					return
				}
				reopened.Add(1)
			}
			c, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				refused.Add(1)
				lastErr.Store(err.Error())
				sleep(ctx, time.Second)
				continue
			}
			br := bufio.NewReader(c)
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n"); err == nil {
				if resp, err := http.ReadResponse(br, nil); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					held.Add(1)
					// Idle until the server closes it or the hold ends.
					done := make(chan struct{})
					go func() { _, _ = br.ReadByte(); close(done) }()
					select {
					case <-done:
					case <-ctx.Done():
					}
					held.Add(-1)
				} else {
					refused.Add(1)
				}
			} else {
				refused.Add(1)
			}
			c.Close()
			sleep(ctx, 100*time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(one)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
			e, _ := lastErr.Load().(string)
			fmt.Fprintf(out, "t=%3.0fs held=%d refused=%d reopened=%d lastDialError=%q\n", time.Since(start).Seconds(), held.Load(), refused.Load(), reopened.Load(), e)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// probe GETs url n times over fresh connections from the address from.
func probe(url, from string, n int, apiKey string, out io.Writer) error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext,
		DisableKeepAlives: true,
	}}
	var slowest time.Duration
	failed := 0
	for i := range n {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			return err
		}
		if apiKey != "" {
			req.Header.Set("X-API-KEY", apiKey)
		}
		start := time.Now()
		resp, err := client.Do(req)
		d := time.Since(start)
		slowest = max(slowest, d)
		if err != nil {
			failed++
			fmt.Fprintf(out, "%d error after %v: %v\n", i, d.Round(time.Millisecond), err)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Fprintf(out, "%d status=%d %v\n", i, resp.StatusCode, d.Round(100*time.Microsecond))
	}
	fmt.Fprintf(out, "probe: %d requests, %d failed, slowest %v\n", n, failed, slowest.Round(100*time.Microsecond))
	return nil
}

// list runs c clients that each GET url rounds times.
func list(url string, c, rounds int, apiKey string, out io.Writer) error {
	client := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: c}}
	var (
		mu       sync.Mutex
		statuses = map[string]int{}
		bytes    atomic.Int64
		lat      []time.Duration
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for range rounds {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("X-API-KEY", apiKey)
				t0 := time.Now()
				resp, err := client.Do(req)
				status := "error"
				if err == nil {
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					bytes.Add(n)
					status = fmt.Sprint(resp.StatusCode)
				}
				mu.Lock()
				statuses[status]++
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Fprintf(out, "list: %d requests in %v, statuses %v, %d MB, p50 %v, max %v\n",
		c*rounds, time.Since(start).Round(time.Millisecond), statuses, bytes.Load()>>20,
		lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	return nil
}
