package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/systemd"
)

// TestLengthVersionNamesTheBounds: a change of llm.max_tokens or
// cloud.max_tokens changes the cache version, so an answer cut at the old
// bound is not served to a query that sets no max_tokens.
func TestLengthVersionNamesTheBounds(t *testing.T) {
	base := config.Default()
	llm, cloud := base, base
	llm.LLM.MaxTokens++
	cloud.Cloud.MaxTokens++
	seen := map[string]bool{}
	for _, c := range []config.Config{base, llm, cloud} {
		seen[lengthVersion(c)] = true
	}
	if len(seen) != 3 {
		t.Fatalf("length versions %v: a bound's change must change it", seen)
	}
}

// A config that does not load stops hedge run with systemd.ExitConfig, the
// status the unit does not restart, and says why on stderr.
func TestRunBadConfigExitStatus(t *testing.T) {
	bin := hedgeBinary(t)
	dir := t.TempDir()
	for name, text := range map[string]string{
		"unknown key":   "version: 1\nslm:\n  treshold: 0.5\n",
		"newer version": "version: 99\n",
		"not YAML":      "version: [1\n",
	} {
		cfg := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--config", cfg)
		cmd.Env = append(os.Environ(), "HEDGE_STATE_DIR="+filepath.Join(dir, "state"))
		out, err := cmd.CombinedOutput()
		if code := exitCode(err); code != systemd.ExitConfig || !strings.Contains(string(out), "hedge: config:") {
			t.Errorf("%s: hedge run exited %d, want %d with the reason:\n%s", name, code, systemd.ExitConfig, out)
		}
	}
}
