package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrFileMode is returned by ReadPasswordFile for a file that others than
// its owner may read or write: a password must not be world-readable.
var ErrFileMode = errors.New("password file is readable by others")

// ReadPasswordFile reads a password from a file that only its owner may
// read (mode 0600 or 0400). One trailing newline is dropped.
func ReadPasswordFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("read mqtt password file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("read mqtt password file %s: %w (mode %04o; chmod 600 it)", path, ErrFileMode, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read mqtt password file: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("read mqtt password file %s: it is empty", path)
	}
	return s, nil
}

// TLSFiles names the PEM files of a TLS connection to the broker.
type TLSFiles struct {
	CA, Cert, Key, ServerName string
}

// Config builds the tls.Config: CA "" uses the system roots; Cert and Key
// add a client certificate. TLS 1.2 at least.
func (f TLSFiles) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt tls ca %s: no PEM certificate in it", f.CA)
		}
		c.RootCAs = pool
	}
	if f.Cert != "" || f.Key != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls cert/key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
