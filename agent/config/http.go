package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// HTTP configures the loopback HTTP API (OpenAI-compatible), /metrics,
// health and the dashboard. Owned by the HTTP work.
type HTTP struct {
	// Enabled serves the HTTP API; on by default, on loopback only.
	Enabled bool `yaml:"enabled"`
	// Listen is host:port ("127.0.0.1:8080") or "unix:/path/to/http.sock".
	// A host that is not loopback requires a bearer token.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token (one line) in a file only its owner
	// may read (mode 0600 or stricter). HEDGE_HTTP_TOKEN wins over it. The
	// token itself is never read from the config file, which is world-readable.
	TokenFile string `yaml:"token_file"`
	// Token is the bearer token from HEDGE_HTTP_TOKEN; never from YAML. A
	// Secret, like the other credentials, so that printing the config
	// cannot show it.
	Token Secret `yaml:"-"`
	// MaxBodyBytes bounds a request body; 0 derives it from
	// limits.max_query_bytes (room for the query, a system prompt and some
	// history, all JSON-escaped).
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// ReadTimeout bounds reading one request (headers and body).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds each write of a response: the whole body of a
	// plain reply, one chunk of a stream. Generation time is bounded by
	// limits.request_timeout, not by this.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// Debug shows query texts in the dashboard's recent decisions (also on
	// with log.level: debug). Off by default: query text is private.
	Debug bool `yaml:"debug"`
	// Recent is how many decisions the dashboard keeps in memory.
	Recent int `yaml:"recent"`
}

// DefaultHTTPListen is where the HTTP API listens unless configured.
const DefaultHTTPListen = "127.0.0.1:8080"

func defaultHTTP() HTTP {
	return HTTP{
		Enabled:      true,
		Listen:       DefaultHTTPListen,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		IdleTimeout:  60 * time.Second,
		Recent:       50,
	}
}

func (h *HTTP) env() []envOverride {
	return []envOverride{
		{"HEDGE_HTTP_LISTEN", setString(&h.Listen)},
		{"HEDGE_HTTP_TOKEN", func(v string) error { h.Token = Secret(v); return nil }},
		{"HEDGE_HTTP_TOKEN_FILE", setString(&h.TokenFile)},
	}
}

func (h *HTTP) validate() []string {
	var p []string
	if !h.Enabled {
		return nil
	}
	loopback, err := ListenIsLocal(h.Listen)
	if err != nil {
		p = append(p, Problem("http.listen", fmt.Sprintf("%q", h.Listen), err.Error()))
	} else if !loopback && h.Token == "" && h.TokenFile == "" {
		p = append(p, Problem("http.listen", h.Listen,
			"is reachable beyond this machine, so a bearer token is required: set HEDGE_HTTP_TOKEN or http.token_file"))
	}
	if h.Token != "" {
		if why := tokenProblem(h.Token.Reveal()); why != "" {
			p = append(p, Problem("HEDGE_HTTP_TOKEN", "(hidden)", why))
		}
	}
	if h.MaxBodyBytes < 0 || h.MaxBodyBytes > 64<<20 {
		p = append(p, Problem("http.max_body_bytes", h.MaxBodyBytes, "must be between 0 (derived from limits.max_query_bytes) and 67108864"))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"http.read_timeout", h.ReadTimeout}, {"http.write_timeout", h.WriteTimeout}, {"http.idle_timeout", h.IdleTimeout}} {
		if d.v <= 0 {
			p = append(p, Problem(d.key, d.v, "must be a positive duration such as 10s"))
		}
	}
	if h.Recent < 0 || h.Recent > 10000 {
		p = append(p, Problem("http.recent", h.Recent, "must be between 0 and 10000"))
	}
	return p
}

// UnixPrefix marks an http.listen value that is a Unix socket path.
const UnixPrefix = "unix:"

// ListenIsLocal parses an http.listen value and reports whether only this
// machine can reach it: a Unix socket, or a host that is a loopback address
// or "localhost". An empty host (":8080") listens on every interface.
func ListenIsLocal(listen string) (bool, error) {
	if path, ok := strings.CutPrefix(listen, UnixPrefix); ok {
		switch {
		case path == "":
			return false, errors.New("needs a socket path after unix:")
		case len(path) > 107:
			return false, errors.New("socket path is longer than the 107 bytes a Unix socket path may have")
		}
		return true, nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return false, errors.New("must be host:port such as 127.0.0.1:8080, or unix:/path")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return false, fmt.Errorf("port %q is not a number between 0 and 65535", port)
	}
	return LoopbackHost(host), nil
}

// tokenProblem says what is wrong with a bearer token, or "".
func tokenProblem(tok string) string {
	if len(tok) < 16 {
		return "a bearer token must be at least 16 characters"
	}
	for _, r := range tok {
		if r > unicode.MaxASCII || unicode.IsSpace(r) || unicode.IsControl(r) {
			return "a bearer token must be printable ASCII without spaces"
		}
	}
	return ""
}

// BearerToken returns the token the HTTP API requires: HEDGE_HTTP_TOKEN if
// set, else the first line of http.token_file, which must not be readable by
// group or others; "" when neither is set (no token, loopback only).
func (h HTTP) BearerToken() (string, error) {
	if h.Token != "" || h.TokenFile == "" {
		return h.Token.Reveal(), nil
	}
	data, err := ReadSecretFile("http.token_file", h.TokenFile)
	if err != nil {
		return "", err
	}
	tok, _, _ := strings.Cut(data, "\n")
	tok = strings.TrimSpace(tok)
	if why := tokenProblem(tok); why != "" {
		return "", fmt.Errorf("read http.token_file: %s: %s", h.TokenFile, why)
	}
	return tok, nil
}
