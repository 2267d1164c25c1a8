//go:build !linux

package admin

import "net"

// peerUID reports errPeerUnknown: SO_PEERCRED is Linux's, and the server is
// deployed on Linux; elsewhere the socket's and directory's modes guard it.
func peerUID(net.Conn) (uint32, error) { return 0, errPeerUnknown }

// dirOwner reports nothing where peerUID cannot be checked.
func dirOwner(string) (uint32, bool) { return 0, false }
