package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
)

// storiesModel is the real trained 260K llama model kept beside the repo.
func storiesModel(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(tinyModel(t))
	if err != nil {
		t.Fatalf("stories260K.gguf is needed from ../shared/models: %v", err)
	}
	return data
}

// TestModelsPullThenWireLLM goes the user's way: pull a model by URL and
// checksum, list and verify it, name it in llm.model, answer a query, rm.
func TestModelsPullThenWireLLM(t *testing.T) {
	blob := storiesModel(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "stories260K.gguf", time.Time{}, bytes.NewReader(blob))
	}))
	defer srv.Close()
	sum := sha256.Sum256(blob)
	state := t.TempDir()
	t.Setenv("HEDGE_STATE_DIR", state)
	t.Setenv("HEDGE_CONFIG", "")
	var out, errb bytes.Buffer
	ctx := context.Background()
	if rc := modelsCmd(ctx, []string{"pull", srv.URL + "/stories260K.gguf", "--sha256", hex.EncodeToString(sum[:]), "--name", "stories"}, &out, &errb); rc != 0 {
		t.Fatalf("pull rc=%d: %s %s", rc, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "installed stories") || !strings.Contains(errb.String(), "download 100%") {
		t.Errorf("pull output: %q / %q", out.String(), errb.String())
	}
	out.Reset()
	if rc := modelsCmd(ctx, []string{"list"}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "stories") {
		t.Fatalf("list rc=%d: %s", rc, out.String())
	}
	out.Reset()
	if rc := modelsCmd(ctx, []string{"verify", "stories"}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "stories: ok") {
		t.Fatalf("verify rc=%d: %s", rc, out.String())
	}

	cfg := config.Default()
	cfg.StateDir = state
	cfg.LLM.Model = "stories"
	cfg.LLM.Temperature = 0
	cfg.LLM.Threads = 1
	cfg.LLM.SystemPrompt = ""
	cfg.LLM.MaxTokens = 16
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gen, closeFn, err := wireLLM(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	var streamed strings.Builder
	ans, err := gen.Generate(ctx, agent.Query{ID: "a"}, func(s string) { streamed.WriteString(s) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ans.Answer, "Once upon a time") || ans.Model != "stories" || streamed.String() != ans.Answer {
		t.Fatalf("answer %+v, streamed %q", ans, streamed.String())
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	if rc := modelsCmd(ctx, []string{"rm", "stories"}, &out, &errb); rc != 0 {
		t.Fatalf("rm rc=%d: %s", rc, errb.String())
	}
	if _, _, err := wireLLM(ctx, cfg, slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "llm.model") {
		t.Fatalf("wireLLM after rm: %v", err)
	}
}

func TestWireLLMOff(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	gen, closeFn, err := wireLLM(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil || gen != nil || closeFn() != nil {
		t.Fatalf("llm.model \"\": gen %v, err %v", gen, err)
	}
}

func TestWireLLMByPathAndBadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "story.gguf")
	os.WriteFile(p, storiesModel(t)[:5000], 0o644)
	cfg := config.Default()
	cfg.StateDir = dir
	cfg.LLM.Model = p
	_, _, err := wireLLM(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated model: %v", err)
	}
}

func TestModelsUsage(t *testing.T) {
	var out, errb bytes.Buffer
	t.Setenv("HEDGE_STATE_DIR", t.TempDir())
	for _, args := range [][]string{{}, {"pull"}, {"pull", "http://x/y.gguf"}, {"rm"}, {"frob"}} {
		if rc := modelsCmd(context.Background(), args, &out, &errb); rc != 2 {
			t.Errorf("models %v: rc=%d, want 2", args, rc)
		}
	}
}
