package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// errPeerUnknown is returned by peerUID where the platform cannot tell who
// is at the other end of a Unix socket.
var errPeerUnknown = errors.New("peer credentials are not available on this platform")

// checkPeer refuses a peer whose uid is not one of trusted. Root (uid 0) is
// always trusted: it can read the data directory anyway.
func checkPeer(peer uint32, trusted ...uint32) error {
	if peer == 0 || slices.Contains(trusted, peer) {
		return nil
	}
	var ids []string
	for _, id := range trusted {
		if s := strconv.FormatUint(uint64(id), 10); id != 0 && !slices.Contains(ids, s) {
			ids = append(ids, s)
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("the other end runs as uid %d, but only root may", peer)
	}
	return fmt.Errorf("the other end runs as uid %d, but only uid %s or root may", peer, strings.Join(ids, ", "))
}

// checkConn checks the uid at the other end of conn against trusted. Where
// the platform does not report it, the socket's mode 0600 and the data
// directory's 0700 are the only guard, and the connection is accepted.
func checkConn(conn net.Conn, trusted ...uint32) error {
	uid, err := peerUID(conn)
	if errors.Is(err, errPeerUnknown) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the peer's credentials: %w", err)
	}
	return checkPeer(uid, trusted...)
}

// peerListener closes every accepted connection whose peer is neither the
// server's own user nor root, so that a local user who can reach the socket
// (through a loosened mode) cannot issue or revoke keys.
type peerListener struct {
	net.Listener
	self   uint32
	logger *slog.Logger
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := checkConn(conn, l.self); err != nil {
			l.logger.Warn("admin socket: refused a connection", "err", err)
			conn.Close()
			continue
		}
		return conn, nil
	}
}

func euid() uint32 { return uint32(os.Geteuid()) }
