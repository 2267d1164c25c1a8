// Package admin carries the operator's API-key commands from the CLI to a
// running server over a Unix socket in the data directory. The socket is the
// whole admin interface: nothing administrative listens on the network, and
// only a user who can open the data directory (mode 0700) and the socket
// (mode 0600) can use it. On Linux both ends also check each other's uid
// (SO_PEERCRED): the server serves only its own user and root, the client
// talks only to a server running as itself, root, or the directory's owner.
package admin

import (
	"encoding/json"
	"time"

	"github.com/neostore/neostore-secrets"
)

// SocketName is the file name of the admin socket inside the data directory.
const SocketName = "admin.sock"

// keyView is an API-key record as the admin protocol and `apikey list --json`
// show it: never the key, never its hash.
type keyView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Tenant    string     `json:"tenant"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt"`
	RevokedAt *time.Time `json:"revokedAt"`
	LastUsed  *time.Time `json:"lastUsed"`
}

func viewOf(k neostore.APIKey) keyView {
	return keyView{
		ID: k.ID, Name: k.Name, Tenant: k.Tenant, Scopes: k.Scopes.Names(), CreatedAt: k.CreatedAt,
		ExpiresAt: k.ExpiresAt.Ptr(), RevokedAt: k.RevokedAt.Ptr(), LastUsed: k.LastUsed.Ptr(),
	}
}

func (v keyView) record() neostore.APIKey {
	var scopes neostore.Scope
	for _, name := range v.Scopes {
		s, _ := neostore.ParseScope(name)
		scopes |= s
	}
	return neostore.APIKey{
		ID: v.ID, Name: v.Name, Tenant: v.Tenant, Scopes: scopes, CreatedAt: v.CreatedAt,
		ExpiresAt: neostore.BoundOf(v.ExpiresAt), RevokedAt: neostore.BoundOf(v.RevokedAt), LastUsed: neostore.BoundOf(v.LastUsed),
	}
}

// MarshalKeys renders records as the JSON array `apikey list --json` prints.
func MarshalKeys(keys []neostore.APIKey) ([]byte, error) {
	views := make([]keyView, len(keys))
	for i, k := range keys {
		views[i] = viewOf(k)
	}
	return json.MarshalIndent(views, "", "  ")
}

type createRequest struct {
	Tenant    string     `json:"tenant"`
	Scopes    []string   `json:"scopes"`
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

type createResponse struct {
	Key    string  `json:"key"`
	Record keyView `json:"record"`
}

type errorResponse struct {
	Code    string              `json:"code"`
	Message string              `json:"message"`
	Fields  map[string][]string `json:"fields,omitempty"`
}
