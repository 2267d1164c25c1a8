package connlimit_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/neostore/neostore-secrets/connlimit"
)

// limited listens on loopback with cfg and returns the listener, a channel
// of the connections Accept returned, and one of the refusal reasons.
func limited(t *testing.T, cfg connlimit.Config) (*connlimit.Listener, <-chan net.Conn, <-chan string) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan string, 100)
	cfg.OnRefuse = func(reason string) { refused <- reason }
	ln := connlimit.New(raw, cfg)
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln, accepted, refused
}

// dial connects from the loopback address from (the kernel's choice when
// empty) and closes the connection at the end of the test.
func dial(t *testing.T, addr net.Addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustAccept waits for the listener to hand out a connection.
func mustAccept(t *testing.T, accepted <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-accepted:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("Accept returned no connection within 5s")
		return nil
	}
}

// assertRefused dials from the loopback address from and checks that the
// server closed the connection within a second: the connect or the first
// read fails at once instead of waiting for its deadline.
func assertRefused(t *testing.T, addr net.Addr, from string, refused <-chan string, wantReason string) {
	t.Helper()
	start := time.Now()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr.String())
	if err == nil {
		// On loopback the reset can come before or after connect returns.
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("the excess connection: %v, want it reset by the server", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the excess connection was closed after %v, want within a second", d)
	}
	select {
	case got := <-refused:
		if got != wantReason {
			t.Errorf("OnRefuse(%q), want %q", got, wantReason)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("OnRefuse was not called")
	}
}

// assertOpen checks that both ends of an accepted connection still talk.
func assertOpen(t *testing.T, client, server net.Conn) {
	t.Helper()
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatalf("write: %v", err)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, make([]byte, 1)); err != nil {
		t.Fatalf("the accepted connection does not carry data: %v", err)
	}
}

func TestListener_Max(t *testing.T) {
	ln, accepted, refused := limited(t, connlimit.Config{Max: 3})
	var clients, servers []net.Conn
	for range 3 {
		clients = append(clients, dial(t, ln.Addr(), ""))
		servers = append(servers, mustAccept(t, accepted))
	}
	assertRefused(t, ln.Addr(), "", refused, connlimit.ReasonTotal)
	if got := ln.Open(); got != 3 {
		t.Errorf("Open() = %d, want 3", got)
	}

	t.Run("AReleasedSlotIsReused", func(t *testing.T) {
		servers[0].Close()
		servers[0].Close() // a second Close frees nothing more
		c := dial(t, ln.Addr(), "")
		s := mustAccept(t, accepted)
		assertOpen(t, c, s)
		assertOpen(t, clients[1], servers[1])
		assertRefused(t, ln.Addr(), "", refused, connlimit.ReasonTotal)
	})
}

func TestListener_MaxPerClient(t *testing.T) {
	ln, accepted, refused := limited(t, connlimit.Config{Max: 10, MaxPerClient: 2})
	for range 2 {
		dial(t, ln.Addr(), "127.0.0.1")
		mustAccept(t, accepted)
	}
	assertRefused(t, ln.Addr(), "127.0.0.1", refused, connlimit.ReasonClient)

	other := dial(t, ln.Addr(), "127.0.0.2")
	assertOpen(t, other, mustAccept(t, accepted))
}

// httpServer serves "ok" over ln with its ConnState hook, and returns a
// channel that receives each time a connection goes idle.
func httpServer(t *testing.T, ln *connlimit.Listener) <-chan struct{} {
	t.Helper()
	idle := make(chan struct{}, 10)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: func(c net.Conn, s http.ConnState) {
			ln.ConnState(c, s)
			if s == http.StateIdle {
				idle <- struct{}{}
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return idle
}

// get sends one request over c and reads the response, leaving c idle.
func get(c net.Conn) error {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

// An HTTP server at its limit closes the connection idle the longest for a
// new one, instead of refusing the newcomer.
func TestListener_EvictsIdle(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evicted := make(chan struct{}, 10)
	ln := connlimit.New(raw, connlimit.Config{Max: 2, OnEvict: func() { evicted <- struct{}{} }})
	idle := httpServer(t, ln)

	first := dial(t, ln.Addr(), "")
	if err := get(first); err != nil {
		t.Fatal(err)
	}
	<-idle
	second := dial(t, ln.Addr(), "")
	if err := get(second); err != nil {
		t.Fatal(err)
	}
	<-idle

	third := dial(t, ln.Addr(), "")
	if err := get(third); err != nil {
		t.Fatalf("a request over a new connection at the limit: %v, want it served", err)
	}
	select {
	case <-evicted:
	case <-time.After(5 * time.Second):
		t.Fatal("no idle connection was evicted")
	}
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := first.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read on the longest-idle connection = %v, want EOF (closed)", err)
	}
	if got := ln.Open(); got != 2 {
		t.Errorf("Open() = %d, want 2", got)
	}
}

// At its own limit a client gets no more connections, even when one of its
// own is idle: evicting it would let the client churn the server.
func TestListener_PerClientLimitDoesNotEvict(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan string, 10)
	ln := connlimit.New(raw, connlimit.Config{Max: 10, MaxPerClient: 1, OnRefuse: func(r string) { refused <- r }})
	idle := httpServer(t, ln)
	held := dial(t, ln.Addr(), "127.0.0.1")
	if err := get(held); err != nil {
		t.Fatal(err)
	}
	<-idle
	assertRefused(t, ln.Addr(), "127.0.0.1", refused, connlimit.ReasonClient)
	if err := get(held); err != nil {
		t.Errorf("the idle connection after its client was refused another: %v, want it still served", err)
	}
}
