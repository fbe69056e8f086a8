package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/hedge-edge/hedge/agent/config"
)

// ErrFileMode is wrapped by the errors of ReadPasswordFile and
// TLSFiles.Config for a password or key file that others than its owner may
// read. It is config.ErrSecretFileMode, the check every hedge secret file
// passes.
var ErrFileMode = config.ErrSecretFileMode

// ReadPasswordFile reads a password from a file that only its owner may
// read (mode 0600 or 0400), with config.ReadSecretFile. One trailing
// newline is dropped; the rest is the password, spaces included.
func ReadPasswordFile(path string) (string, error) {
	b, err := config.ReadSecretFile("mqtt.password_file", path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(b, "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("read mqtt.password_file: %s is empty", path)
	}
	return s, nil
}

// TLSFiles names the PEM files of a TLS connection to the broker.
type TLSFiles struct {
	CA, Cert, Key, ServerName string
}

// Config builds the tls.Config: CA "" uses the system roots; Cert and Key
// add a client certificate. TLS 1.2 at least. The key is a secret file like
// the password: one that group or others may read is refused
// (config.ErrSecretFileMode), since whoever copied it can pose as hedge.
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
		key, err := config.ReadSecretFile("mqtt.tls.key", f.Key)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: %w", err)
		}
		certPEM, err := os.ReadFile(f.Cert)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls cert: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, []byte(key))
		if err != nil {
			return nil, fmt.Errorf("mqtt tls cert/key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
