// Package tlsconfig serves the API over TLS: a server configuration with
// TLS 1.2 as the floor, Go's default cipher suites and HTTP/2, a certificate
// that is re-read from its PEM files while the server runs (so a renewed
// certificate is picked up without a restart and without dropping open
// connections), and optional client-certificate verification for mTLS.
package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often Watch looks at the certificate files when
// the caller gives no interval.
const DefaultPollInterval = 5 * time.Second

// Reloader holds the server certificate loaded from a certificate and a key
// file, and swaps in a new one when Reload succeeds. It is safe for
// concurrent use; handshakes never wait for a reload.
type Reloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	cert atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // serialises reloads and guards seen
	seen stamp      // the files as they were before the last load attempt
}

// stamp identifies a version of the two files: their identity (inode),
// modification time and size. A rename over the file (how certbot, cert-manager
// and Kubernetes secret volumes replace certificates) changes the identity,
// an in-place rewrite the time or size.
type stamp struct {
	cert, key os.FileInfo
}

func (a stamp) equal(b stamp) bool {
	return sameFile(a.cert, b.cert) && sameFile(a.key, b.key)
}

func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

func statFiles(certFile, keyFile string) stamp {
	var s stamp
	s.cert, _ = os.Stat(certFile)
	s.key, _ = os.Stat(keyFile)
	return s
}

// NewReloader loads the PEM certificate chain in certFile and its private key
// in keyFile. It fails when they cannot be read, do not parse or do not
// match; logger receives the outcome of later reloads.
func NewReloader(certFile, keyFile string, logger *slog.Logger) (*Reloader, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, logger: logger}
	r.seen = statFiles(certFile, keyFile)
	cert, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert.Store(cert)
	return r, nil
}

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// The error names the problem (no PEM, mismatched key), never key bytes.
		return nil, fmt.Errorf("tls: load certificate %s and key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: parse certificate %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

// Reload re-reads both files. On success the new certificate serves every
// handshake from then on, while connections already open keep theirs. On
// failure the current certificate stays in force and the error is logged
// and returned.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked(statFiles(r.certFile, r.keyFile))
}

// reloadLocked loads the files and remembers st, their state before the
// read, so that a change made during the read is seen at the next poll.
func (r *Reloader) reloadLocked(st stamp) error {
	r.seen = st
	cert, err := loadPair(r.certFile, r.keyFile)
	if err != nil {
		r.logger.Error("TLS certificate reload failed; keeping the current certificate", "err", err)
		return err
	}
	r.cert.Store(cert)
	leaf := cert.Leaf
	r.logger.Info("TLS certificate loaded", "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(),
		"notAfter", leaf.NotAfter.UTC().Format(time.RFC3339))
	if time.Now().After(leaf.NotAfter) {
		r.logger.Warn("the TLS certificate has expired; clients will refuse it", "notAfter", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Watch polls the two files every interval (DefaultPollInterval when
// interval is not positive) and reloads when either has changed, until ctx
// is done. A failed reload is retried only after the files change again, so
// a broken pair logs one error, not one per poll. Polling needs no inotify
// and works for files replaced by rename, including Kubernetes secret
// volumes, whose symbolic links os.Stat follows.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			if st := statFiles(r.certFile, r.keyFile); !st.equal(r.seen) {
				_ = r.reloadLocked(st) // logged by reloadLocked
			}
			r.mu.Unlock()
		}
	}
}

// Certificate returns the certificate currently served.
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// GetCertificate returns the current certificate; it is meant for
// tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// ServerConfig returns a server configuration that presents certs' current
// certificate, accepts TLS 1.2 and 1.3 with Go's default cipher suites and
// curves (forward-secret AEAD suites only), and offers HTTP/2. When
// clientCAs is not nil every client must present a certificate that chains
// to one of them.
func ServerConfig(certs *Reloader, clientCAs *x509.CertPool) *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if clientCAs != nil {
		cfg.ClientCAs = clientCAs
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

// ErrNoCertificates is returned by LoadCertPool when the file holds no PEM
// certificate.
var ErrNoCertificates = errors.New("tls: no PEM certificate found")

// LoadCertPool reads a bundle of PEM certificates, such as the CAs that sign
// client certificates.
func LoadCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tls: CA bundle %s: %w", file, ErrNoCertificates)
	}
	return pool, nil
}
