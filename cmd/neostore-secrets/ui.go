package main

import (
	"flag"
	"net/http"
	"strconv"
	"time"

	"github.com/neostore/neostore-secrets/console"
)

// uiConfig configures the web console on the API listener. The zero value
// serves it with API-key sign-in and the default timeouts.
type uiConfig struct {
	Off         bool          // --ui=false
	ClientID    string        // public OAuth2 client of the console; empty: API keys only
	IdleTimeout time.Duration // forget the credential after this long without activity
	RevealFor   time.Duration // how long a revealed value stays on screen
}

func (c *uiConfig) register(fs *flag.FlagSet) {
	fs.BoolFunc("ui", "serve the web console at /ui/ (default true; --ui=false turns it off)", func(s string) error {
		on, err := strconv.ParseBool(s)
		c.Off = !on
		return err
	})
	fs.StringVar(&c.ClientID, "ui-client-id", "", "OAuth2 client id of the console (a public client with PKCE at --jwt-issuer; redirect URI <origin>/ui/callback); empty: API-key sign-in only")
	fs.DurationVar(&c.IdleTimeout, "ui-idle-timeout", console.DefaultIdleTimeout, "the console forgets its credential after this long without activity")
	fs.DurationVar(&c.RevealFor, "ui-reveal-timeout", console.DefaultRevealFor, "how long the console shows a revealed value before it removes it")
}

// handler returns the console's handler, or nil when it is off.
func (c *uiConfig) handler(tokens tokenConfig) (http.Handler, error) {
	if c.Off {
		return nil, nil
	}
	h, err := console.Handler(console.Config{
		Issuer:      tokens.Issuer,
		ClientID:    c.ClientID,
		Audience:    tokens.Audience,
		IdleTimeout: c.IdleTimeout,
		RevealFor:   c.RevealFor,
	})
	if err != nil {
		return nil, configError(err)
	}
	return h, nil
}
