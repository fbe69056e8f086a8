package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Limits.MaxQueryBytes != 16<<10 {
		t.Fatalf("max_query_bytes default = %d", c.Limits.MaxQueryBytes)
	}
}

func TestParseProblems(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // every substring must appear
	}{
		{"missing version", "device: pi\n", []string{"version: missing"}},
		{"wrong version", "version: 2\n", []string{"version: 2: this hedge reads version: 1"}},
		{"unknown top key", "version: 1\ndevcie: pi\n", []string{`line 2: unknown key "devcie" at top level`}},
		{"unknown nested key", "version: 1\nlimits:\n  max_query_byte: 10\n", []string{`line 3: unknown key "max_query_byte" in section limits`}},
		{"wrong type", "version: 1\nlimits:\n  max_query_bytes: lots\n", []string{`line 3: limits.max_query_bytes: "lots" is not a whole number`}},
		{"bad duration", "version: 1\nlimits:\n  request_timeout: soon\n", []string{`line 3: limits.request_timeout: "soon" is not a duration`}},
		{"bad values", "version: 1\ndevice: 'a/b'\nlog:\n  level: loud\nlimits:\n  max_query_bytes: 0\n", []string{
			`device: "a/b"`, `log.level: "loud"`, "limits.max_query_bytes: 0",
		}},
		{"not yaml", "version: [1\n", []string{"not valid YAML"}},
		{"not a mapping", "00", []string{`line 1: config must be a mapping of keys such as version: 1, not the value "00"`}},
		{"mapping for a value", "version: 1\ndevice: {a: b}\n", []string{"line 2: device.a: a mapping is not a string"}},
		{"NaN", "version: 1\nslm:\n  threshold: .nan\ncache:\n  semantic_threshold: .nan\n", []string{"slm.threshold: NaN", "cache.semantic_threshold: NaN"}},
		{"infinity", "version: 1\nllm:\n  repeat_penalty: .inf\n", []string{"llm.repeat_penalty: +Inf"}},
		{"value with a newline", "version: 1\nmqtt:\n  broker: \"tcp://a\\nb\"\n", []string{`mqtt.broker: "tcp://a\nb": must be a URL`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			var p Problems
			if !errors.As(err, &p) {
				t.Fatalf("Parse = %v, want Problems", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems %q do not contain %q", err.Error(), w)
				}
			}
		})
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	_, err := Parse([]byte("version: 1\nfoo: 1\nbar: 2\n"))
	if err == nil || !strings.Contains(err.Error(), `"foo"`) || !strings.Contains(err.Error(), `"bar"`) {
		t.Fatalf("want both unknown keys reported, got %v", err)
	}
}

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte("version: 1\ndevice: kitchen-pi\nlimits:\n  request_timeout: 5s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Device != "kitchen-pi" || c.Limits.RequestTimeout != 5*time.Second || c.Limits.MaxQueryBytes != 16<<10 {
		t.Fatalf("got %+v", c)
	}
}

func TestLoadEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hedge.yaml")
	if err := os.WriteFile(path, []byte("version: 1\nstate_dir: /nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HEDGE_STATE_DIR", dir)
	t.Setenv("HEDGE_DEVICE", "porch")
	t.Setenv("HEDGE_LLM_CPU_LIBRARY_DIR", "/opt/hedge/variants")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != dir || c.Device != "porch" || c.LLM.CPULibraryDir != "/opt/hedge/variants" {
		t.Fatalf("env overrides not applied: %+v", c)
	}
	t.Setenv("HEDGE_LOG_LEVEL", "chatty")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), `log.level: "chatty"`) {
		t.Fatalf("invalid env value not reported: %v", err)
	}
}

// TestPathsWithNUL: a NUL byte in any key that names a path is a problem
// naming that key, and config check reports them all at once.
func TestPathsWithNUL(t *testing.T) {
	yaml := `version: 1
state_dir: "/var/lib/a\0b"
socket: "/run/h\0.sock"
slm:
  intents: "/etc/i\0.yaml"
llm:
  model: "m\0.gguf"
  cpu_library_dir: "/v\0"
mqtt:
  tls:
    key: "/k\0"
http:
  listen: "unix:/run/h\0"
  token_file: "/t\0"
cloud:
  api_key_file: "/c\0"
`
	_, err := Parse([]byte(yaml))
	if err == nil {
		t.Fatal("paths with NUL bytes accepted")
	}
	for _, key := range []string{"state_dir", "socket", "slm.intents", "llm.model", "llm.cpu_library_dir", "mqtt.tls.key", "http.listen", "http.token_file", "cloud.api_key_file"} {
		if !strings.Contains(err.Error(), key+`: "`) || !strings.Contains(err.Error(), `\x00`) {
			t.Errorf("no problem names %s with its NUL:\n%v", key, err)
		}
	}
	if got := strings.Count(err.Error(), "holds a NUL byte"); got != 9 {
		t.Errorf("%d NUL problems, want 9:\n%v", got, err)
	}
}

// TestReadSecretFileRefusesFIFO: a FIFO named as a secret file is refused
// at once (not a regular file), rather than blocking until a writer comes.
func TestReadSecretFileRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadSecretFile("http.token_file", fifo)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "read http.token_file: "+fifo+" is not a regular file") {
			t.Fatalf("FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadSecretFile blocked on a FIFO")
	}
}

func TestSanitizeDevice(t *testing.T) {
	for in, want := range map[string]string{"raspberrypi": "raspberrypi", "my host#1": "myhost1", "###": "hedge"} {
		if got := sanitizeDevice(in); got != want {
			t.Errorf("sanitizeDevice(%q) = %q, want %q", in, got, want)
		}
	}
}

// hedge ask without --socket: $HEDGE_SOCKET, else the user's own hedge run,
// else the service's socket, also when the user may not look at it.
func TestAskSocket(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Setenv("RUNTIME_DIRECTORY", t.TempDir()) // root's own default is the service's
	}
	t.Setenv("HEDGE_SOCKET", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	own := DefaultSocket()
	dir := t.TempDir()
	service := filepath.Join(dir, "run", "hedge.sock")
	if got := askSocket(service); got != own {
		t.Errorf("nothing listens: %s, want the user's own %s", got, own)
	}
	if err := os.MkdirAll(filepath.Dir(service), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(service, nil, 0o660); err != nil {
		t.Fatal(err)
	}
	if got := askSocket(service); got != service {
		t.Errorf("the service runs: %s, want %s", got, service)
	}
	if err := os.MkdirAll(filepath.Dir(own), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(own, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := askSocket(service); got != own {
		t.Errorf("the user's own hedge runs too: %s, want %s", got, own)
	}
	t.Setenv("HEDGE_SOCKET", filepath.Join(dir, "named.sock"))
	if got := askSocket(service); got != filepath.Join(dir, "named.sock") {
		t.Errorf("$HEDGE_SOCKET: %s", got)
	}
}
