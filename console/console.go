// Package console serves the web console at /ui/: plain ES modules, one
// stylesheet and one page, embedded in the binary so that `go build` alone
// yields a working console and nothing is fetched at run time. The console
// talks to the Secret API of the same origin with a credential it keeps in
// memory only; this package serves files and headers, never a secret.
package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// Prefix is where the console is mounted on the API listener.
const Prefix = "/ui/"

// DefaultIdleTimeout is how long the console keeps a credential without
// user activity when Config.IdleTimeout is zero.
const DefaultIdleTimeout = 15 * time.Minute

// DefaultRevealFor is how long a revealed value stays on screen when
// Config.RevealFor is zero.
const DefaultRevealFor = 30 * time.Second

//go:embed assets
var assets embed.FS

// Config is what the console needs to know of the server.
type Config struct {
	// Issuer is the OAuth2 issuer whose tokens the API accepts
	// (--jwt-issuer). Empty: sign-in with an API key only.
	Issuer string
	// ClientID is the console's public OAuth2 client (--ui-client-id).
	// Empty: sign-in with an API key only.
	ClientID string
	// Audience is sent with the authorization request (--jwt-audience):
	// Auth0 issues an access token for the API only when it is named.
	Audience string
	// IdleTimeout is how long a credential is kept without user activity.
	// Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// RevealFor is how long a revealed value stays on screen. Zero means
	// DefaultRevealFor.
	RevealFor time.Duration
}

// file is one embedded asset, ready to serve.
type file struct {
	contentType string
	body        []byte
}

// contentTypes are the media types of the assets by extension; an asset of
// another extension is a build mistake and Handler refuses it.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Handler returns the handler of everything under Prefix. It is meant to
// be mounted at Prefix, for GET (and so HEAD).
func Handler(cfg Config) (http.Handler, error) {
	csp, err := contentSecurityPolicy(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	files := map[string]file{}
	err = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("console: asset %s has no known media type", p)
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(p, "assets/")] = file{contentType: ct, body: body}
		return nil
	})
	if err != nil {
		return nil, err
	}
	reveal := cfg.RevealFor
	if reveal <= 0 {
		reveal = DefaultRevealFor
	}
	// OAuth2 sign-in needs both; with one missing the page offers API keys only.
	var issuer, clientID string
	if cfg.Issuer != "" && cfg.ClientID != "" {
		issuer, clientID = cfg.Issuer, cfg.ClientID
	}
	settings, err := json.Marshal(map[string]any{
		"issuer":        issuer,
		"clientId":      clientID,
		"audience":      cfg.Audience,
		"idleTimeoutMs": idle.Milliseconds(),
		"revealMs":      reveal.Milliseconds(),
	})
	if err != nil {
		return nil, err
	}
	// The page reads its settings from config.json rather than from an
	// inline script, which the policy forbids.
	files["config.json"] = file{contentType: "application/json; charset=utf-8", body: settings}
	index := files["index.html"]
	// The OAuth2 redirect comes back to callback, which is the same page.
	files["callback"] = index
	files[""] = index
	return &handler{files: files, csp: []string{csp}}, nil
}

// contentSecurityPolicy allows scripts, styles and images of the console's
// own origin only, and connections to it and to the issuer (discovery and
// the token request of the sign-in). Nothing may frame the console, no form
// may be submitted anywhere, and no <base> may redirect relative URLs.
func contentSecurityPolicy(issuer string) (string, error) {
	connect := "'self'"
	if issuer != "" {
		u, err := url.Parse(issuer)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "", fmt.Errorf("console: the issuer %q is not an http(s) URL", issuer)
		}
		connect += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src " + connect +
		"; frame-ancestors 'none'; form-action 'none'; base-uri 'none'", nil
}

type handler struct {
	files map[string]file
	csp   []string
}

// Headers of every console response. no-store because the page holds
// values while it runs, and a cached page or script has no business
// outliving a sign-out.
var (
	hdrNoStore    = []string{"no-store"}
	hdrNoReferrer = []string{"no-referrer"}
	hdrNoSniff    = []string{"nosniff"}
	hdrDeny       = []string{"DENY"}
	hdrSameOrigin = []string{"same-origin"}
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd["Content-Security-Policy"] = h.csp
	hd["Referrer-Policy"] = hdrNoReferrer
	hd["Cache-Control"] = hdrNoStore
	hd["X-Content-Type-Options"] = hdrNoSniff
	hd["X-Frame-Options"] = hdrDeny
	hd["Cross-Origin-Opener-Policy"] = hdrSameOrigin
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	f, ok := h.files[strings.TrimPrefix(r.URL.Path, Prefix)]
	if !ok {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	hd.Set("Content-Type", f.contentType)
	_, _ = w.Write(f.body)
}
