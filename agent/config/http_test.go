package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHTTPDefaults(t *testing.T) {
	h := Default().HTTP
	if !h.Enabled || h.Listen != "127.0.0.1:8080" {
		t.Fatalf("http defaults = %+v, want enabled on 127.0.0.1:8080", h)
	}
}

func TestHTTPListenNeedsTokenBeyondLoopback(t *testing.T) {
	cases := []struct {
		listen string
		token  string
		file   string
		want   string // "" means valid
	}{
		{"127.0.0.1:8080", "", "", ""},
		{"[::1]:8080", "", "", ""},
		{"localhost:9000", "", "", ""},
		{"127.0.0.2:0", "", "", ""},
		{"unix:/run/hedge/http.sock", "", "", ""},
		{"0.0.0.0:8080", "", "", "bearer token is required"},
		{":8080", "", "", "bearer token is required"},
		{"192.168.1.5:8080", "", "", "bearer token is required"},
		{"edge.example:8080", "", "", "bearer token is required"},
		{"0.0.0.0:8080", "0123456789abcdef0123", "", ""},
		{"0.0.0.0:8080", "", "/etc/hedge/http.token", ""},
		{"0.0.0.0:8080", "short", "", "at least 16 characters"},
		{"0.0.0.0:8080", "has a space in the token", "", "without spaces"},
		{"8080", "", "", "must be host:port"},
		{"127.0.0.1:99999", "", "", "port \"99999\""},
		{"unix:", "", "", "needs a socket path"},
	}
	for _, c := range cases {
		t.Run(c.listen+"/"+c.token+c.file, func(t *testing.T) {
			cfg := Default()
			cfg.HTTP.Listen, cfg.HTTP.Token, cfg.HTTP.TokenFile = c.listen, Secret(c.token), c.file
			err := cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Validate = %v, want valid", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Validate = %v, want a problem containing %q", err, c.want)
			}
			if err != nil && c.token != "" && strings.Contains(err.Error(), c.token) {
				t.Fatalf("problem %q reveals the token", err)
			}
		})
	}
}

func TestHTTPDisabledIsNotChecked(t *testing.T) {
	_, err := Parse([]byte("version: 1\nhttp:\n  enabled: false\n  listen: 0.0.0.0:80\n"))
	if err != nil {
		t.Fatalf("disabled http with a public listen: %v", err)
	}
}

func TestHTTPTimeoutsAndLimits(t *testing.T) {
	_, err := Parse([]byte("version: 1\nhttp:\n  read_timeout: 0s\n  max_body_bytes: -1\n  recent: -3\n"))
	for _, w := range []string{"http.read_timeout: 0s", "http.max_body_bytes: -1", "http.recent: -3"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Parse = %v, want %q", err, w)
		}
	}
}

func TestHTTPEnv(t *testing.T) {
	c := Default()
	env := map[string]string{"HEDGE_HTTP_LISTEN": "unix:/tmp/h.sock", "HEDGE_HTTP_TOKEN": "0123456789abcdefXYZ"}
	if err := c.applyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "unix:/tmp/h.sock" || c.HTTP.Token != "0123456789abcdefXYZ" {
		t.Fatalf("env not applied: %+v", c.HTTP)
	}
	tok, err := c.HTTP.BearerToken()
	if err != nil || tok != "0123456789abcdefXYZ" {
		t.Fatalf("BearerToken = %q, %v", tok, err)
	}
}

func TestHTTPBearerTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("  s3cret-token-0123456789\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := HTTP{TokenFile: good}
	tok, err := h.BearerToken()
	if err != nil || tok != "s3cret-token-0123456789" {
		t.Fatalf("BearerToken = %q, %v", tok, err)
	}

	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("s3cret-token-0123456789\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (HTTP{TokenFile: open}).BearerToken(); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("world-readable token file: err = %v, want a mode error", err)
	}
	if _, err := (HTTP{TokenFile: filepath.Join(dir, "missing")}).BearerToken(); err == nil {
		t.Fatal("missing token file: want an error")
	}
	weak := filepath.Join(dir, "weak")
	if err := os.WriteFile(weak, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (HTTP{TokenFile: weak}).BearerToken(); err == nil || !strings.Contains(err.Error(), "16") {
		t.Fatalf("weak token file: err = %v", err)
	}
	if tok, err := (HTTP{}).BearerToken(); err != nil || tok != "" {
		t.Fatalf("no token: %q, %v", tok, err)
	}
}
