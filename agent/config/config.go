// Package config loads hedge's YAML configuration: defaults first, then a
// strict decode (unknown keys are errors naming the key and its line), then
// environment overrides, then Validate. Nothing is opened here.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Version is the only config schema version this hedge reads.
const Version = 1

// Config is hedge's whole configuration.
type Config struct {
	Version  int     `yaml:"version"`
	Device   string  `yaml:"device"`
	StateDir string  `yaml:"state_dir"`
	Socket   string  `yaml:"socket"`
	Log      Log     `yaml:"log"`
	Limits   Limits  `yaml:"limits"`
	Cache    Cache   `yaml:"cache"`
	SLM      SLM     `yaml:"slm"`
	LLM      LLM     `yaml:"llm"`
	MQTT     MQTT    `yaml:"mqtt"`
	HTTP     HTTP    `yaml:"http"`
	Cloud    Cloud   `yaml:"cloud"`
	Wyoming  Wyoming `yaml:"wyoming"`

	Conversation Conversation `yaml:"conversation"`
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Limits bounds requests.
type Limits struct {
	MaxQueryBytes  int           `yaml:"max_query_bytes"`
	MaxTokens      int           `yaml:"max_tokens"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
	ShutdownGrace  time.Duration `yaml:"shutdown_grace"`
	MaxConnections int           `yaml:"max_connections"`
}

// Cache configures the answer cache.
type Cache struct {
	Enabled           bool          `yaml:"enabled"`
	TTL               time.Duration `yaml:"ttl"`
	MaxEntries        int           `yaml:"max_entries"`
	SemanticThreshold float64       `yaml:"semantic_threshold"`
}

// Default returns the configuration used when no file is given. Paths follow
// systemd's StateDirectory/RuntimeDirectory when hedge runs as a service.
func Default() Config {
	c := Config{
		Version:  Version,
		Device:   defaultDevice(),
		StateDir: DefaultStateDir(),
		Log:      Log{Level: "info", Format: "text"},
		Limits: Limits{
			MaxQueryBytes:  16 << 10,
			MaxTokens:      4096,
			RequestTimeout: 60 * time.Second,
			ShutdownGrace:  10 * time.Second,
			MaxConnections: 256,
		},
		Cache: Cache{Enabled: true, TTL: time.Hour, MaxEntries: 10000, SemanticThreshold: 0.95},
	}
	c.Socket = DefaultSocket()
	c.SLM = defaultSLM()
	c.LLM = defaultLLM()
	c.MQTT = defaultMQTT()
	c.HTTP = defaultHTTP()
	c.Cloud = defaultCloud()
	c.Conversation = defaultConversation()
	return c
}

// DefaultStateDir is $STATE_DIRECTORY (systemd), /var/lib/hedge for root,
// else $XDG_STATE_HOME/hedge or ~/.local/state/hedge.
func DefaultStateDir() string {
	if d := firstPath(os.Getenv("STATE_DIRECTORY")); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/hedge"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "hedge")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "hedge")
	}
	return ".hedge"
}

// ServiceSocket is the socket of hedge run as the system service
// (RuntimeDirectory=hedge): root and the members of group hedge may use it.
const ServiceSocket = "/run/hedge/hedge.sock"

// AskSocket is the socket a client asks when none is named: $HEDGE_SOCKET,
// else this user's DefaultSocket when it exists (a `hedge run` of their
// own), else ServiceSocket when it exists or cannot be looked at (a member
// of group hedge reaches the service; anyone else is told the socket's
// path and that it is not theirs), else DefaultSocket.
func AskSocket() string { return askSocket(ServiceSocket) }

func askSocket(service string) string {
	own := DefaultSocket()
	if os.Getenv("HEDGE_SOCKET") != "" || own == service {
		return own
	}
	if _, err := os.Stat(own); err == nil {
		return own
	}
	if _, err := os.Stat(service); !errors.Is(err, fs.ErrNotExist) {
		return service
	}
	return own
}

// DefaultSocket is $HEDGE_SOCKET, else hedge.sock in $RUNTIME_DIRECTORY
// (systemd), /run/hedge for root, $XDG_RUNTIME_DIR/hedge, or the state dir.
func DefaultSocket() string {
	if s := os.Getenv("HEDGE_SOCKET"); s != "" {
		return s
	}
	if d := firstPath(os.Getenv("RUNTIME_DIRECTORY")); d != "" {
		return filepath.Join(d, "hedge.sock")
	}
	if os.Geteuid() == 0 {
		return ServiceSocket
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "hedge", "hedge.sock")
	}
	sd := os.Getenv("HEDGE_STATE_DIR")
	if sd == "" {
		sd = DefaultStateDir()
	}
	return filepath.Join(sd, "hedge.sock")
}

// firstPath returns the first of systemd's colon-separated directories.
func firstPath(s string) string {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[:i]
	}
	return s
}

func defaultDevice() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "hedge"
	}
	return sanitizeDevice(h)
}

// Problems is every problem found in a configuration, one sentence each.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "\n") }

// Load reads the file at path (defaults only when path is ""), applies the
// environment overrides and validates. Every problem is reported at once as
// Problems.
func Load(path string) (Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		if err := decode(data, &c); err != nil {
			return c, err
		}
	}
	if err := c.applyEnv(os.LookupEnv); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Parse decodes data over the defaults and validates, without environment
// overrides; tests and `hedge config check` of a snippet use it.
func Parse(data []byte) (Config, error) {
	c := Default()
	if err := decode(data, &c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

var (
	yamlFieldErr = regexp.MustCompile(`^line (\d+): field (\S+) not found in type config\.(\w+)$`)
	yamlTypeErr  = regexp.MustCompile("(?s)^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
	// A mapping or list where a value was expected has no value to quote.
	yamlKindErr = regexp.MustCompile(`^line (\d+): cannot unmarshal !!(\w+) into (\S+)$`)
)

// keysByLine maps each line of a parsed YAML document to the dotted key
// defined there, so type errors can name the key and not only the line.
func keysByLine(root *yaml.Node) map[int]string {
	keys := map[int]string{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if prefix != "" {
					k = prefix + "." + k
				}
				keys[n.Content[i].Line] = k
				keys[n.Content[i+1].Line] = k
				walk(n.Content[i+1], k)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				if _, taken := keys[c.Line]; !taken {
					keys[c.Line] = prefix
				}
				walk(c, prefix)
			}
		}
	}
	walk(root, "")
	return keys
}

func typeName(goType string) string {
	switch goType {
	case "int", "int64", "uint", "uint16", "uint32", "uint64", "int32":
		return "a whole number"
	case "float64", "float32":
		return "a number"
	case "bool":
		return "true or false"
	case "time.Duration":
		return "a duration such as 30s or 5m"
	case "string":
		return "a string"
	}
	if strings.HasPrefix(goType, "[]") {
		return "a list"
	}
	return "a " + strings.TrimPrefix(goType, "config.") + " section"
}

func decode(data []byte, c *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Problems{"config is not valid YAML: " + YAMLMessage(err)}
	}
	// A scalar or a list is valid YAML but no config; decoding it into the
	// probe below would report Go's types instead of the file's line.
	if len(root.Content) == 1 {
		if doc := root.Content[0]; doc.Kind != yaml.MappingNode && doc.ShortTag() != "!!null" {
			return Problems{fmt.Sprintf("line %d: config must be a mapping of keys such as version: 1, not %s", doc.Line, nodeKind(doc))}
		}
	}
	// version must be present: a file without it is a file of another kind.
	var probe struct {
		Version *int `yaml:"version"`
	}
	var probs Problems
	if err := root.Decode(&probe); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return Problems{"config is not valid YAML: " + YAMLMessage(err)}
		}
		// A version that is not a number: the decode below says so,
		// naming the line and the key.
	} else if probe.Version == nil {
		probs = append(probs, "version: missing; this hedge reads version: 1")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	var te *yaml.TypeError
	switch {
	case errors.As(err, &te):
		keys := keysByLine(&root)
		for _, m := range te.Errors {
			if g := yamlFieldErr.FindStringSubmatch(m); g != nil {
				probs = append(probs, fmt.Sprintf("line %s: unknown key %q%s", g[1], g[2], sectionOf(g[3])))
				continue
			}
			if g := yamlTypeErr.FindStringSubmatch(m); g != nil {
				line, _ := strconv.Atoi(g[1])
				probs = append(probs, fmt.Sprintf("line %d: %s: %q is not %s", line, keys[line], g[3], typeName(g[4])))
				continue
			}
			if g := yamlKindErr.FindStringSubmatch(m); g != nil {
				line, _ := strconv.Atoi(g[1])
				probs = append(probs, fmt.Sprintf("line %d: %s: a %s is not %s", line, keys[line], yamlKindName(g[2]), typeName(g[3])))
				continue
			}
			probs = append(probs, YAMLMessage(errors.New(m)))
		}
	case err != nil:
		probs = append(probs, "config is not valid YAML: "+YAMLMessage(err))
	}
	if len(probs) > 0 {
		return probs
	}
	return nil
}

// YAMLMessage is a YAML error as one line of valid UTF-8 (yaml cuts the
// values it quotes at a byte count), without the "yaml: " prefix. The
// intents file reports its YAML errors with it too.
func YAMLMessage(err error) string {
	s := strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "yaml: ")), " ")
	return strings.ToValidUTF8(s, "")
}

// yamlKindName names a YAML tag of a type error: !!map, !!seq, ….
func yamlKindName(tag string) string {
	switch tag {
	case "map":
		return "mapping"
	case "seq":
		return "list"
	}
	return tag
}

// nodeKind describes a YAML node that should have been a mapping.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	v := []rune(n.Value)
	if len(v) > 40 {
		return "the value " + strconv.Quote(string(v[:40])+"…")
	}
	return "the value " + strconv.Quote(n.Value)
}

// sectionOf names the section a Go type stands for in error messages.
func sectionOf(typ string) string {
	if typ == "Config" {
		return " at top level"
	}
	return " in section " + strings.ToLower(typ)
}

// applyEnv applies HEDGE_* overrides for paths and secrets.
func (c *Config) applyEnv(lookup func(string) (string, bool)) error {
	var probs Problems
	for _, o := range envOverrides(c) {
		v, ok := lookup(o.name)
		if !ok {
			continue
		}
		if err := o.set(v); err != nil {
			probs = append(probs, fmt.Sprintf("%s=%q: %v", o.name, v, err))
		}
	}
	if len(probs) > 0 {
		return probs
	}
	return nil
}

type envOverride struct {
	name string
	set  func(string) error
}

func setString(p *string) func(string) error {
	return func(v string) error { *p = v; return nil }
}

// envOverrides lists the environment variables hedge reads. Secrets
// (passwords, API keys, tokens) are read here or from 0600 files, never
// from the world-readable config.
func envOverrides(c *Config) []envOverride {
	o := []envOverride{
		{"HEDGE_DEVICE", setString(&c.Device)},
		{"HEDGE_STATE_DIR", setString(&c.StateDir)},
		{"HEDGE_SOCKET", setString(&c.Socket)},
		{"HEDGE_LOG_LEVEL", setString(&c.Log.Level)},
		{"HEDGE_LOG_FORMAT", setString(&c.Log.Format)},
	}
	o = append(o, c.SLM.env()...)
	o = append(o, c.LLM.env()...)
	o = append(o, c.MQTT.env()...)
	o = append(o, c.HTTP.env()...)
	o = append(o, c.Cloud.env()...)
	o = append(o, c.Wyoming.env()...)
	return o
}

var deviceRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func sanitizeDevice(h string) string {
	var b strings.Builder
	for _, r := range h {
		if r < 128 && (r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		}
	}
	s := b.String()
	if s == "" || !deviceRe.MatchString(s) {
		return "hedge"
	}
	return s
}

// Validate checks every value and returns all problems as Problems.
func (c *Config) Validate() error {
	var p Problems
	bad := func(key string, val any, why string) { p = append(p, Problem(key, val, why)) }
	if c.Version != Version {
		bad("version", c.Version, "this hedge reads version: 1")
	}
	if !deviceRe.MatchString(c.Device) {
		bad("device", fmt.Sprintf("%q", c.Device), "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (it names MQTT topics)")
	}
	if c.StateDir == "" {
		bad("state_dir", `""`, "must be a directory path")
	}
	if c.Socket == "" {
		bad("socket", `""`, "must be a path")
	} else if len(c.Socket) > 107 {
		bad("socket", c.Socket, "is longer than the 107 bytes a Unix socket path may have")
	}
	for _, f := range c.pathKeys() {
		if strings.ContainsRune(f.path, 0) {
			bad(f.key, f.path, "holds a NUL byte, which no file path may (the system call would fail, or a C library would read a shorter path)")
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", fmt.Sprintf("%q", c.Log.Level), "must be debug, info, warn or error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", fmt.Sprintf("%q", c.Log.Format), "must be text or json")
	}
	if c.Limits.MaxQueryBytes < 1 || c.Limits.MaxQueryBytes > 1<<20 {
		bad("limits.max_query_bytes", c.Limits.MaxQueryBytes, "must be between 1 and 1048576")
	}
	if c.Limits.MaxTokens < 1 {
		bad("limits.max_tokens", c.Limits.MaxTokens, "must be at least 1")
	}
	if c.Limits.RequestTimeout <= 0 {
		bad("limits.request_timeout", c.Limits.RequestTimeout, "must be a positive duration such as 30s")
	}
	if c.Limits.ShutdownGrace <= 0 {
		bad("limits.shutdown_grace", c.Limits.ShutdownGrace, "must be a positive duration such as 10s")
	}
	if c.Limits.MaxConnections < 1 {
		bad("limits.max_connections", c.Limits.MaxConnections, "must be at least 1")
	}
	if c.Cache.TTL < 0 {
		bad("cache.ttl", c.Cache.TTL, "must not be negative")
	}
	if c.Cache.MaxEntries < 0 {
		bad("cache.max_entries", c.Cache.MaxEntries, "must not be negative")
	}
	if !within(c.Cache.SemanticThreshold, 0, 1) {
		bad("cache.semantic_threshold", c.Cache.SemanticThreshold, "must be between 0 and 1")
	}
	p = append(p, c.SLM.validate()...)
	p = append(p, c.LLM.validate()...)
	p = append(p, c.MQTT.validate()...)
	p = append(p, c.HTTP.validate()...)
	p = append(p, c.Cloud.validate()...)
	p = append(p, c.Conversation.validate()...)
	p = append(p, c.Wyoming.validate()...)
	if len(p) > 0 {
		return p
	}
	return nil
}

// pathKey is a config key whose value names a file or directory.
type pathKey struct{ key, path string }

// pathKeys lists every key that names a path, so that Validate applies the
// rules all paths share to each one.
func (c *Config) pathKeys() []pathKey {
	return []pathKey{
		{"state_dir", c.StateDir}, {"socket", c.Socket},
		{"slm.intents", c.SLM.Intents}, {"slm.model_dir", c.SLM.ModelDir}, {"slm.runtime_library", c.SLM.RuntimeLibrary},
		{"slm.transformer.model", c.SLM.Transformer.Model}, {"slm.transformer.tokenizer", c.SLM.Transformer.Tokenizer},
		{"llm.model", c.LLM.Model}, {"llm.cpu_library_dir", c.LLM.CPULibraryDir},
		{"mqtt.password_file", c.MQTT.PasswordFile}, {"mqtt.tls.ca", c.MQTT.TLS.CA}, {"mqtt.tls.cert", c.MQTT.TLS.Cert}, {"mqtt.tls.key", c.MQTT.TLS.Key},
		{"http.listen", c.HTTP.Listen}, {"http.token_file", c.HTTP.TokenFile},
		{"cloud.api_key_file", c.Cloud.APIKeyFile},
	}
}

// Problem formats one problem: "key: value: why". A value that would not
// print as one line of text (a newline, an escape sequence, invalid UTF-8)
// is quoted, so that each problem stays one line of `hedge config check`.
// The intents file words its problems with it too.
func Problem(key string, val any, why string) string {
	if s, ok := val.(string); ok && !printable(s) {
		val = strconv.Quote(s)
	}
	return fmt.Sprintf("%s: %v: %s", key, val, why)
}

// printable reports whether s is valid UTF-8 of graphic characters and
// spaces only.
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }) < 0
}

// within reports whether x is a number between lo and hi; NaN is not, and
// a YAML .nan or .inf must not pass a range check by comparing false.
func within(x, lo, hi float64) bool { return x >= lo && x <= hi }
