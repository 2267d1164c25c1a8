package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"syscall"
	"time"

	"github.com/neostore/neostore-secrets"
)

// ErrNoServer is returned by Dial when no server answers on the data
// directory's admin socket, so the caller may open the store itself.
var ErrNoServer = errors.New("no server is running on this data directory")

// Client talks to a running server's admin socket and implements
// neostore.APIKeyIssuer.
type Client struct {
	http *http.Client
}

// Dial connects to the admin socket of dataDir. It returns ErrNoServer when
// the socket does not exist or nothing listens on it.
//
// It talks only to a server that runs as the caller's user, as root, or as
// the owner of dataDir (the service's user, when root runs the command): a
// local user who could replace the socket must not be able to answer
// "revoked" for a key that still works. Every connection is checked, not
// only the first.
func Dial(dataDir string) (*Client, error) {
	path := filepath.Join(dataDir, SocketName)
	trusted := []uint32{euid()}
	if owner, ok := dirOwner(dataDir); ok {
		trusted = append(trusted, owner)
	}
	dialer := net.Dialer{Timeout: 2 * time.Second}
	dial := func(ctx context.Context) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, "unix", path)
		if err != nil {
			return nil, err
		}
		if err := checkConn(conn, trusted...); err != nil {
			conn.Close()
			return nil, &refusedError{fmt.Errorf("refusing to use the admin socket %s: %w (another user may have replaced it: check the data directory's owner and mode)", path, err)}
		}
		return conn, nil
	}
	conn, err := dial(context.Background())
	if err != nil {
		var refused *refusedError
		switch {
		case errors.As(err, &refused):
			return nil, refused.err
		case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
			return nil, ErrNoServer
		}
		return nil, fmt.Errorf("connect to admin socket: %w", err)
	}
	conn.Close()
	return &Client{http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx)
		}},
	}}, nil
}

// Create implements neostore.APIKeyIssuer.
func (c *Client) Create(ctx context.Context, req neostore.NewAPIKey) (string, neostore.APIKey, error) {
	body, _ := json.Marshal(createRequest{Tenant: req.Tenant, Scopes: req.Scopes.Names(), Name: req.Name, ExpiresAt: req.ExpiresAt.Ptr()})
	var resp createResponse
	if err := c.do(ctx, http.MethodPost, "/apikeys", body, http.StatusCreated, &resp); err != nil {
		return "", neostore.APIKey{}, err
	}
	return resp.Key, resp.Record.record(), nil
}

// List implements neostore.APIKeyIssuer.
func (c *Client) List(ctx context.Context, tenant string) ([]neostore.APIKey, error) {
	var views []keyView
	if err := c.do(ctx, http.MethodGet, "/apikeys?tenant="+url.QueryEscape(tenant), nil, http.StatusOK, &views); err != nil {
		return nil, err
	}
	keys := make([]neostore.APIKey, len(views))
	for i, v := range views {
		keys[i] = v.record()
	}
	return keys, nil
}

// Revoke implements neostore.APIKeyIssuer.
func (c *Client) Revoke(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/apikeys/"+url.PathEscape(id)+"/revoke", nil, http.StatusNoContent, nil)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://admin"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		var e errorResponse
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code == "" {
			return fmt.Errorf("admin request: unexpected status %d", resp.StatusCode)
		}
		return &neostore.Error{Code: e.Code, Message: e.Message, Fields: e.Fields}
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// refusedError is a connection Dial made and closed because of who served it.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }
