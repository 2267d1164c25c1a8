// Package connlimit bounds the connections a net.Listener hands out, in
// total and per client address, and refuses the excess at once.
//
// golang.org/x/net/netutil.LimitListener is the usual tool, but it blocks
// Accept at the limit, so excess connections wait in the kernel's backlog
// until they time out: a client cannot tell a saturated server from a dead
// one, and it has no per-client limit. Here Accept takes every connection
// the kernel offers; one over the per-client limit is reset at once, and
// one over the total limit is given the slot of the connection that has
// been idle (between HTTP requests) the longest, or reset when none is.
package connlimit

import (
	"container/list"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"sync"
)

// Refusal reasons passed to Config.OnRefuse: a fixed vocabulary, fit for a
// metric label.
const (
	ReasonTotal  = "total"  // the listener's Max was reached
	ReasonClient = "client" // the client address's MaxPerClient was reached
)

// Config holds the limits of one listener. The zero value limits nothing.
type Config struct {
	// Max is the most connections open at once; 0 means unlimited. Each
	// holds a file descriptor and its buffers, so it must stay below the
	// process's RLIMIT_NOFILE with room for the store and logs.
	Max int
	// MaxPerClient is the most connections open at once from one client IP
	// address; 0 means unlimited. Behind a proxy every client has the
	// proxy's address, so this then limits the proxy as a whole.
	MaxPerClient int
	// OnRefuse, when not nil, is called for each connection refused, with
	// ReasonTotal or ReasonClient.
	OnRefuse func(reason string)
	// OnEvict, when not nil, is called for each idle connection closed to
	// make room for a new one.
	OnEvict func()
}

// Listener is a net.Listener with Config's limits. Give its ConnState to
// the http.Server that serves it, so that it knows which connections are
// idle and can be closed to make room; without it nothing is evicted.
type Listener struct {
	net.Listener
	cfg Config

	mu      sync.Mutex
	open    int
	clients map[netip.Addr]*client
	idle    list.List // of *Conn, the longest idle first
}

type client struct {
	open int
}

// New returns ln with cfg's limits.
func New(ln net.Listener, cfg Config) *Listener {
	return &Listener{Listener: ln, cfg: cfg, clients: map[netip.Addr]*client{}}
}

// Accept returns the next connection within the limits. Connections over a
// limit are closed before Accept returns, so they never reach the caller.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if conn := l.admit(c); conn != nil {
			return conn, nil
		}
	}
}

// Open returns the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// admit takes c within the limits, or refuses it and returns nil. At Max,
// the longest-idle connection is closed to make room, so that idle
// keep-alives from many addresses cannot lock newcomers out. At
// MaxPerClient nothing is evicted: a client that holds its share gets no
// more, and evicting its own idle connections for its new ones would let
// it make the server serve a request per connection it churns through.
func (l *Listener) admit(c net.Conn) *Conn {
	addr := clientAddr(c)
	l.mu.Lock()
	cl := l.clients[addr]
	if cl == nil {
		cl = &client{}
		l.clients[addr] = cl
	}
	var evict *list.Element
	reason := ""
	switch {
	case l.cfg.MaxPerClient > 0 && cl.open >= l.cfg.MaxPerClient:
		reason = ReasonClient
	case l.cfg.Max > 0 && l.open >= l.cfg.Max:
		if evict = l.idle.Front(); evict == nil {
			reason = ReasonTotal
		}
	}
	if reason != "" {
		if cl.open == 0 {
			delete(l.clients, addr)
		}
		l.mu.Unlock()
		refuse(c)
		if l.cfg.OnRefuse != nil {
			l.cfg.OnRefuse(reason)
		}
		return nil
	}
	var victim *Conn
	if evict != nil {
		// The new connection takes the victim's slot now, so that the
		// victim's Close (below, outside the lock) frees nothing.
		victim = evict.Value.(*Conn)
		l.release(victim)
		l.clients[addr] = cl // release drops a client whose last slot it frees
	}
	l.open++
	cl.open++
	conn := &Conn{Conn: c, l: l, addr: addr, cl: cl}
	l.mu.Unlock()
	if victim != nil {
		victim.Conn.Close()
		if l.cfg.OnEvict != nil {
			l.cfg.OnEvict()
		}
	}
	return conn
}

// markIdle puts c at the back of the idle list.
func (l *Listener) markIdle(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.released || c.idle != nil {
		return
	}
	c.idle = l.idle.PushBack(c)
}

// unidle removes c from the idle list. l.mu must be held.
func (l *Listener) unidle(c *Conn) {
	if c.idle != nil {
		l.idle.Remove(c.idle)
		c.idle = nil
	}
}

// release frees c's slot once. l.mu must be held.
func (l *Listener) release(c *Conn) {
	if c.released {
		return
	}
	c.released = true
	l.unidle(c)
	l.open--
	c.cl.open--
	if c.cl.open == 0 {
		delete(l.clients, c.addr)
	}
}

// ConnState is an http.Server ConnState hook: it records which connections
// are idle between requests, the only ones that may be evicted.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, ok := nc.(*Conn)
	if !ok || c.l != l {
		return
	}
	switch state {
	case http.StateIdle:
		l.markIdle(c)
	case http.StateActive, http.StateHijacked, http.StateClosed:
		l.mu.Lock()
		l.unidle(c)
		l.mu.Unlock()
	}
}

// Conn is a connection Listener accepted; Close frees its slot.
type Conn struct {
	net.Conn
	l    *Listener
	addr netip.Addr
	cl   *client

	// guarded by l.mu
	released bool
	idle     *list.Element // in l.idle while idle
}

// Close closes the connection and frees its slot.
func (c *Conn) Close() error {
	c.l.mu.Lock()
	c.l.release(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// clientAddr is the connection's remote IP address, IPv4-mapped IPv6
// addresses as IPv4; the zero Addr for a Unix socket, so that all its
// clients share one.
func clientAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// refuse closes c with a reset rather than a FIN, so that the client learns
// at once and the socket does not linger in TIME_WAIT on our side.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
