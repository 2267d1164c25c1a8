package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/neostore/neostore-secrets/tlsconfig"
)

// tlsFlags configures HTTPS for `serve`. The zero value serves plain HTTP,
// which checkTransport allows on loopback addresses and, with --insecure-http,
// behind a TLS-terminating proxy.
type tlsFlags struct {
	CertFile       string        // PEM certificate chain, leaf first
	KeyFile        string        // PEM private key of the leaf
	ClientCAFile   string        // PEM bundle of CAs whose client certificates are required (mTLS); off when empty
	ReloadInterval time.Duration // how often the files are checked for a new certificate; default 5s
}

func (c *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.CertFile, "tls-cert", "", "PEM certificate chain to serve HTTPS with (leaf first); re-read when it changes or on SIGHUP")
	fs.StringVar(&c.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.ClientCAFile, "tls-client-ca", "", "PEM bundle of CAs: require every client to present a certificate they signed (mTLS)")
	fs.DurationVar(&c.ReloadInterval, "tls-reload-interval", tlsconfig.DefaultPollInterval, "how often --tls-cert and --tls-key are checked for changes")
}

func (c tlsFlags) enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// checkTransport decides between HTTPS and plain HTTP before anything is
// opened. Plain HTTP is allowed on a loopback address (a sidecar, `dev`) and,
// with --insecure-http, anywhere (behind a TLS-terminating proxy); both get a
// warning at start.
func checkTransport(addr string, insecure bool, t tlsFlags, logger *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError("serve: --listen %q is not host:port", addr)
	}
	if t.enabled() {
		switch {
		case t.CertFile == "" || t.KeyFile == "":
			return usageError("serve: --tls-cert and --tls-key go together")
		case insecure:
			return usageError("serve: --insecure-http contradicts --tls-cert; give one")
		}
		return nil
	}
	if t.ClientCAFile != "" {
		return usageError("serve: --tls-client-ca needs --tls-cert and --tls-key")
	}
	loopback := host == "localhost"
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		loopback = true
	}
	switch {
	case loopback:
		logger.Warn("serving plain HTTP on a loopback address: only this machine can connect; give --tls-cert and --tls-key to serve HTTPS", "addr", addr)
	case !insecure:
		return usageError("serve: refusing plain HTTP on non-loopback address %s: give --tls-cert and --tls-key, or --insecure-http behind a TLS-terminating proxy", addr)
	default:
		logger.Warn("serving plain HTTP on a non-loopback address: secrets travel unencrypted unless a TLS proxy is in front", "addr", addr)
	}
	return nil
}

// load reads the certificate (and the client CAs) and returns the server's
// TLS configuration, or nils when TLS is off. A certificate that cannot be
// loaded is a configuration error: the server does not start.
func (c tlsFlags) load(logger *slog.Logger) (*tls.Config, *tlsconfig.Reloader, error) {
	if !c.enabled() {
		return nil, nil, nil
	}
	certs, err := tlsconfig.NewReloader(c.CertFile, c.KeyFile, logger)
	if err != nil {
		return nil, nil, configError(err)
	}
	leaf := certs.Certificate().Leaf
	logger.Info("TLS certificate loaded", "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(),
		"notAfter", leaf.NotAfter.UTC().Format(time.RFC3339))
	var clientCAs *x509.CertPool
	if c.ClientCAFile != "" {
		if clientCAs, err = tlsconfig.LoadCertPool(c.ClientCAFile); err != nil {
			return nil, nil, configError(err)
		}
		logger.Info("client certificates required (mTLS)", "clientCA", c.ClientCAFile)
	}
	return tlsconfig.ServerConfig(certs, clientCAs), certs, nil
}

// serveHTTP serves srv on ln, over TLS when srv has a TLS configuration.
func serveHTTP(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		// The certificate comes from TLSConfig.GetCertificate.
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// hstsMaxAge is one year, the value browsers' preload lists ask for.
const hstsMaxAge = "max-age=31536000"

// withHSTS tells browsers to use HTTPS only for this host, on every response
// served over TLS. It lives here rather than in httpapi because only the
// wiring knows whether TLS is on.
func withHSTS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", hstsMaxAge)
		h.ServeHTTP(w, r)
	})
}

// reloadCertificates returns the SIGHUP handler that re-reads the TLS
// certificate pair; without TLS it only logs, so that `systemctl reload`
// never kills the server.
func reloadCertificates(certs *tlsconfig.Reloader, logger *slog.Logger) func(context.Context) {
	return func(context.Context) {
		if certs == nil {
			logger.Info("SIGHUP: nothing to reload (TLS is off)")
			return
		}
		logger.Info("SIGHUP: reloading the TLS certificate")
		_ = certs.Reload() // a failure is logged, and the current certificate stays
	}
}

// watchCertificates reloads certs whenever its files change, until ctx is
// done; wg tracks the goroutine.
func watchCertificates(ctx context.Context, wg *sync.WaitGroup, certs *tlsconfig.Reloader, interval time.Duration) {
	if certs != nil {
		wg.Go(func() { certs.Watch(ctx, interval) })
	}
}
