package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const cloudTestKey = "sk-cfgtest-9f8e7d6c5b4a39281726354"

func TestCloudDefaultsAreOff(t *testing.T) {
	c := Default()
	if c.Cloud.BaseURL != "" {
		t.Errorf("cloud.base_url defaults to %q; the tier must be off by default", c.Cloud.BaseURL)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestCloudValidate(t *testing.T) {
	checkSnippets(t, "hunter2", []snippet{
		{"cloud:\n  base_url: https://api.openai.com/v1\n", ""},
		{"cloud:\n  base_url: http://jetson.local:8080/v1\n  model: qwen2.5\n  stream: true\n", ""},
		{"cloud:\n  base_url: ftp://x/v1\n", `cloud.base_url: "ftp://x/v1": must start with https://`},
		{"cloud:\n  base_url: https://user:hunter2@api.example.com/v1\n", "must not carry credentials"},
		{"cloud:\n  base_url: https://api.example.com/v1\n  model: \"\"\n", `cloud.model: "": must name the model`},
		{"cloud:\n  timeout: 0s\n", "cloud.timeout: 0s: must be a positive duration"},
		{"cloud:\n  max_tokens: 0\n", "cloud.max_tokens: 0: must be between 1 and 1048576"},
		{"cloud:\n  breaker:\n    backoff_min: 10s\n    backoff_max: 1s\n", "cloud.breaker.backoff_max: 1s: must not be below"},
		{"cloud:\n  outbox:\n    concurrency: 0\n", "cloud.outbox.concurrency: 0: must be between 1 and 64"},
		{"cloud:\n  budget:\n    tokens_per_day: -1\n", "cloud.budget.tokens_per_day: -1: must be 0 (no limit) or more"},
		{"cloud:\n  anonymize:\n    policy:\n      ssn: keep_local\n", "cloud.anonymize.policy.ssn: ssn: is not an entity kind"},
		{"cloud:\n  anonymize:\n    policy:\n      iban: drop\n", `cloud.anonymize.policy.iban: "drop": must be replace or keep_local`},
		{"cloud:\n  anonymize:\n    policy:\n      iban: keep_local\n      card: replace\n    owner: Maria Schmidt\n    household: [Jonas]\n", ""},
		{"cloud:\n  api_key: sk-123\n", `unknown key "api_key" in section cloud`},
	})
}

func TestCloudKeyFromEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte(cloudTestKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.Cloud.APIKeyFile = file
	if k, err := c.Cloud.Key(); err != nil || k.Reveal() != cloudTestKey {
		t.Fatalf("Key() = %v, %v", k, err)
	}
	// The environment wins over the file.
	env := map[string]string{"HEDGE_CLOUD_API_KEY": "sk-from-env-123456"}
	if err := c.applyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if k, _ := c.Cloud.Key(); k.Reveal() != "sk-from-env-123456" {
		t.Errorf("Key() = %q, want the environment's", k.Reveal())
	}

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
		c := Default()
		c.Cloud.APIKeyFile = file
		_, err := c.Cloud.Key()
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("mode %04o", mode)) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v, want a refusal that says why", mode, err)
		}
		if err != nil && strings.Contains(err.Error(), cloudTestKey) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
	_ = os.Chmod(file, 0o400)
	if k, err := c.Cloud.Key(); err != nil || k == "" {
		t.Errorf("mode 0400: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	c = Default()
	c.Cloud.APIKeyFile = empty
	if _, err := c.Cloud.Key(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
	c.Cloud.APIKeyFile = filepath.Join(dir, "missing")
	if _, err := c.Cloud.Key(); err == nil {
		t.Error("missing file accepted")
	}
}

func TestSecretHidden(t *testing.T) {
	s := Secret(cloudTestKey)
	var logs strings.Builder
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "key", s)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "key", s)
	js, _ := json.Marshal(Cloud{APIKey: s})
	for _, out := range []string{fmt.Sprintf("%v|%s|%+v|%#v|%q", s, s, s, s, s), logs.String(), string(js), fmt.Sprintf("%+v", Cloud{APIKey: s})} {
		if strings.Contains(out, cloudTestKey) {
			t.Errorf("the key shows in %q", out)
		}
	}
}
