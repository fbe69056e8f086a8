package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Cloud configures the cloud bridge (cloudbridge): an OpenAI-compatible
// API reached only with anonymized text, a circuit breaker, the durable
// outbox and the daily budget. Owned by the cloud work.
type Cloud struct {
	// BaseURL of an OpenAI-compatible API, e.g. https://api.openai.com/v1
	// or a vLLM, llama-server or Ollama at http://host:port/v1. "" turns the
	// tier off (the default, so that hedge runs offline out of the box).
	BaseURL string `yaml:"base_url"`
	// Model is the model name sent with each request.
	Model string `yaml:"model"`
	// APIKeyFile holds the API key (first line) in a file only its owner
	// may read (mode 0600 or stricter). HEDGE_CLOUD_API_KEY wins over it.
	// The key is never read from the config file, which is world-readable.
	APIKeyFile string `yaml:"api_key_file"`
	// APIKey is the key from HEDGE_CLOUD_API_KEY; never from YAML.
	APIKey Secret `yaml:"-"`
	// Timeout bounds one cloud request end to end (streamed or not).
	Timeout time.Duration `yaml:"timeout"`
	// ConnectTimeout bounds the TCP and TLS handshake.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxTokens caps the answer's length; a query's max_tokens may lower it.
	MaxTokens int `yaml:"max_tokens"`
	// Stream uses the streaming API when the caller wants tokens as they come.
	Stream bool `yaml:"stream"`
	// SystemPrompt is sent before the anonymized question; the default one
	// asks the model to keep placeholders such as [PERSON_1] as written.
	SystemPrompt string `yaml:"system_prompt"`

	Breaker   CloudBreaker   `yaml:"breaker"`
	Outbox    CloudOutbox    `yaml:"outbox"`
	Budget    CloudBudget    `yaml:"budget"`
	Anonymize CloudAnonymize `yaml:"anonymize"`
}

// CloudBreaker tunes the circuit breaker and the link monitor.
type CloudBreaker struct {
	// Failures is how many 5xx or malformed answers in a row open the
	// circuit; connection errors, timeouts and 429 open it at once.
	Failures int `yaml:"failures"`
	// BackoffMin and BackoffMax bound the wait before the monitor probes an
	// open circuit; the wait doubles after each failed probe (with jitter).
	// A Retry-After from the server lengthens it.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
}

// CloudOutbox bounds the durable outbox of escalations queued while the
// link is down. When a new escalation would exceed max_entries or
// max_bytes, the oldest entries are dropped (the newest questions are the
// ones someone still waits for); entries older than max_age expire.
type CloudOutbox struct {
	MaxEntries int           `yaml:"max_entries"`
	MaxBytes   int64         `yaml:"max_bytes"`
	MaxAge     time.Duration `yaml:"max_age"`
	// Concurrency is how many queued escalations are sent at once when the
	// link returns.
	Concurrency int `yaml:"concurrency"`
	// MaxAttempts is how often a queued escalation the API refuses (4xx
	// other than 408, 409 and 429) is tried before it is dropped.
	MaxAttempts int `yaml:"max_attempts"`
}

// CloudBudget limits spending per UTC day; 0 means no limit. The caller
// limits apply to each caller (an MQTT topic, a socket peer) separately.
type CloudBudget struct {
	RequestsPerDay       int64 `yaml:"requests_per_day"`
	TokensPerDay         int64 `yaml:"tokens_per_day"`
	CallerRequestsPerDay int64 `yaml:"caller_requests_per_day"`
	CallerTokensPerDay   int64 `yaml:"caller_tokens_per_day"`
}

// CloudAnonymize configures what the anonymizer replaces and what keeps a
// query on the device.
type CloudAnonymize struct {
	// Owner, Household and Location are the device's own names: its
	// owner, the people living with them, and where it is.
	Owner     string   `yaml:"owner"`
	Household []string `yaml:"household"`
	Location  string   `yaml:"location"`
	// People, Organizations and Locations are further names to replace.
	People        []string `yaml:"people"`
	Organizations []string `yaml:"organizations"`
	Locations     []string `yaml:"locations"`
	// Policy maps an entity kind to replace (the default) or keep_local
	// (a query holding one is answered on the device, never escalated).
	Policy map[string]string `yaml:"policy"`
	// MinEntropy is the bits per character above which a long random-looking
	// token counts as a secret (0: the default, 3.5).
	MinEntropy float64 `yaml:"min_entropy"`
}

// AnonymizeKinds are the entity kinds of cloud.anonymize.policy. The list
// mirrors cloudbridge/anonymize.Kinds() (config may not import it); a test
// there keeps the two equal.
var AnonymizeKinds = []string{"email", "phone", "ip", "mac", "url", "card", "iban", "imei", "serial", "gps", "secret", "person", "org", "location"}

// OpenAIBaseURL is the base_url of OpenAI's API, the usual value to set.
const OpenAIBaseURL = "https://api.openai.com/v1"

// DefaultCloudSystemPrompt keeps placeholders intact in the cloud's answer,
// so they can be restored on the device.
const DefaultCloudSystemPrompt = "You are the cloud tier of an assistant on a home or edge device. " +
	"Private values in the question were replaced by placeholders in square brackets, such as [PERSON_1] or [EMAIL_2]. " +
	"Write every placeholder you use exactly as it appears in the question; never guess what it stands for. Answer concisely."

func defaultCloud() Cloud {
	return Cloud{
		Model:          "gpt-4o-mini",
		Timeout:        30 * time.Second,
		ConnectTimeout: 5 * time.Second,
		MaxTokens:      512,
		SystemPrompt:   DefaultCloudSystemPrompt,
		Breaker:        CloudBreaker{Failures: 3, BackoffMin: time.Second, BackoffMax: 5 * time.Minute},
		Outbox: CloudOutbox{
			MaxEntries: 1000, MaxBytes: 8 << 20, MaxAge: 24 * time.Hour,
			Concurrency: 2, MaxAttempts: 5,
		},
	}
}

func (c *Cloud) env() []envOverride {
	return []envOverride{
		{"HEDGE_CLOUD_BASE_URL", setString(&c.BaseURL)},
		{"HEDGE_CLOUD_MODEL", setString(&c.Model)},
		{"HEDGE_CLOUD_API_KEY", func(v string) error { c.APIKey = Secret(strings.TrimSpace(v)); return nil }},
		{"HEDGE_CLOUD_API_KEY_FILE", setString(&c.APIKeyFile)},
	}
}

func (c *Cloud) validate() []string {
	var p []string
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		switch {
		case err != nil:
			p = append(p, Problem("cloud.base_url", fmt.Sprintf("%q", redactURL(c.BaseURL)), "is not a URL"))
		case u.Scheme != "http" && u.Scheme != "https":
			p = append(p, Problem("cloud.base_url", fmt.Sprintf("%q", redactURL(c.BaseURL)), "must start with https:// (or http:// for a server on your network), e.g. "+OpenAIBaseURL))
		case u.Host == "":
			p = append(p, Problem("cloud.base_url", fmt.Sprintf("%q", redactURL(c.BaseURL)), "has no host"))
		case u.User != nil:
			p = append(p, Problem("cloud.base_url", fmt.Sprintf("%q", redactURL(c.BaseURL)), "must not carry credentials; put the API key in HEDGE_CLOUD_API_KEY or cloud.api_key_file"))
		case u.RawQuery != "" || u.Fragment != "":
			p = append(p, Problem("cloud.base_url", fmt.Sprintf("%q", redactURL(c.BaseURL)), "must not have a query or fragment"))
		}
		if strings.TrimSpace(c.Model) == "" {
			p = append(p, Problem("cloud.model", `""`, "must name the model to use, e.g. gpt-4o-mini"))
		}
	}
	if c.APIKey != "" && strings.ContainsAny(string(c.APIKey), " \t\r\n") {
		p = append(p, Problem("HEDGE_CLOUD_API_KEY", "(hidden)", "must be one line without spaces"))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"cloud.timeout", c.Timeout}, {"cloud.connect_timeout", c.ConnectTimeout},
		{"cloud.breaker.backoff_min", c.Breaker.BackoffMin}, {"cloud.breaker.backoff_max", c.Breaker.BackoffMax},
		{"cloud.outbox.max_age", c.Outbox.MaxAge},
	} {
		if d.v <= 0 {
			p = append(p, Problem(d.key, d.v, "must be a positive duration such as 30s"))
		}
	}
	if c.Breaker.BackoffMax < c.Breaker.BackoffMin {
		p = append(p, Problem("cloud.breaker.backoff_max", c.Breaker.BackoffMax, "must not be below cloud.breaker.backoff_min "+c.Breaker.BackoffMin.String()))
	}
	if c.MaxTokens < 1 || c.MaxTokens > 1<<20 {
		p = append(p, Problem("cloud.max_tokens", c.MaxTokens, "must be between 1 and 1048576"))
	}
	if c.Breaker.Failures < 1 {
		p = append(p, Problem("cloud.breaker.failures", c.Breaker.Failures, "must be at least 1"))
	}
	if c.Outbox.MaxEntries < 1 {
		p = append(p, Problem("cloud.outbox.max_entries", c.Outbox.MaxEntries, "must be at least 1"))
	}
	if c.Outbox.MaxBytes < 4096 {
		p = append(p, Problem("cloud.outbox.max_bytes", c.Outbox.MaxBytes, "must be at least 4096"))
	}
	if c.Outbox.Concurrency < 1 || c.Outbox.Concurrency > 64 {
		p = append(p, Problem("cloud.outbox.concurrency", c.Outbox.Concurrency, "must be between 1 and 64"))
	}
	if c.Outbox.MaxAttempts < 1 {
		p = append(p, Problem("cloud.outbox.max_attempts", c.Outbox.MaxAttempts, "must be at least 1"))
	}
	for _, b := range []struct {
		key string
		v   int64
	}{
		{"cloud.budget.requests_per_day", c.Budget.RequestsPerDay}, {"cloud.budget.tokens_per_day", c.Budget.TokensPerDay},
		{"cloud.budget.caller_requests_per_day", c.Budget.CallerRequestsPerDay}, {"cloud.budget.caller_tokens_per_day", c.Budget.CallerTokensPerDay},
	} {
		if b.v < 0 {
			p = append(p, Problem(b.key, b.v, "must be 0 (no limit) or more"))
		}
	}
	keys := make([]string, 0, len(c.Anonymize.Policy))
	for k := range c.Anonymize.Policy {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		known := false
		for _, kind := range AnonymizeKinds {
			known = known || k == kind
		}
		key := "cloud.anonymize.policy." + k
		if !printable(k) {
			key = "cloud.anonymize.policy." + strconv.Quote(k)
		}
		if !known {
			p = append(p, Problem(key, k, "is not an entity kind; the kinds are "+strings.Join(AnonymizeKinds, ", ")))
			continue
		}
		if v := c.Anonymize.Policy[k]; v != "replace" && v != "keep_local" {
			p = append(p, Problem(key, fmt.Sprintf("%q", v), "must be replace or keep_local"))
		}
	}
	if !within(c.Anonymize.MinEntropy, 0, 8) {
		p = append(p, Problem("cloud.anonymize.min_entropy", c.Anonymize.MinEntropy, "must be between 0 (default) and 8 bits per character"))
	}
	return p
}

// Key returns the API key: HEDGE_CLOUD_API_KEY if set, else the first
// line of cloud.api_key_file, else "" (servers on your own network often
// need none). The file must belong to its reader alone: a key file that
// group or others may read is refused, saying why. Errors never hold the key.
func (c Cloud) Key() (Secret, error) {
	if c.APIKey != "" || c.APIKeyFile == "" {
		return c.APIKey, nil
	}
	data, err := ReadSecretFile("cloud.api_key_file", c.APIKeyFile)
	if err != nil {
		return "", err
	}
	key, _, _ := strings.Cut(data, "\n")
	key = strings.TrimSpace(key)
	switch {
	case key == "":
		return "", fmt.Errorf("read cloud.api_key_file: %s: the first line is empty", c.APIKeyFile)
	case strings.ContainsAny(key, " \t"):
		return "", errors.New("read cloud.api_key_file: " + c.APIKeyFile + ": the key holds white space")
	}
	return Secret(key), nil
}

// redactURL hides a password in a URL so that a config error can quote it.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// Secret is a credential. It prints as "(hidden)" in every format (%v, %s,
// %#v, JSON, slog) so that it cannot reach a log or an error by accident;
// Reveal returns the value for the one place that sends it.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "(hidden)"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalText hides the value from JSON and YAML encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue hides the value from log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }
