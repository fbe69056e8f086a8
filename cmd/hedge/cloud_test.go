package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/store"
)

func TestWireCloudOffByDefault(t *testing.T) {
	cfg := config.Default()
	cloud, run, err := wireCloud(context.Background(), cfg, nil, nil, slog.New(slog.DiscardHandler), "", nil)
	if cloud != nil || run != nil || err != nil {
		t.Fatalf("wireCloud with no base_url = %v, %v, %v; want the tier off", cloud, run != nil, err)
	}
}

func TestWireCloudRefusesReadableKeyFile(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("sk-wire-test-0123456789abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Cloud.BaseURL = "http://127.0.0.1:9/v1"
	cfg.Cloud.APIKeyFile = key
	_, _, err := wireCloud(context.Background(), cfg, nil, nil, slog.New(slog.DiscardHandler), "", nil)
	if err == nil || !strings.Contains(err.Error(), "mode 0644") || strings.Contains(err.Error(), "sk-wire-test") {
		t.Fatalf("err = %v, want a refusal naming the mode and not the key", err)
	}
}

type wireCourier struct {
	mu  sync.Mutex
	got []agent.Answer
}

func (c *wireCourier) Deliver(ctx context.Context, replyTo string, a agent.Answer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, a)
	return nil
}

func (c *wireCourier) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// TestWireCloudEndToEnd wires the tier from a config against a loopback
// OpenAI-compatible server: the key file is used, the owner's name is
// anonymized, and the run function drains a queued escalation.
func TestWireCloudEndToEnd(t *testing.T) {
	var mu sync.Mutex
	var bodies, auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(body))
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		_ = json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":%q}}],"usage":{"total_tokens":9}}`,
			"echo: "+req.Messages[len(req.Messages)-1].Content)
	}))
	defer srv.Close()

	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("sk-wire-test-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Cloud.BaseURL = srv.URL + "/v1"
	cfg.Cloud.Model = "m"
	cfg.Cloud.APIKeyFile = key
	cfg.Cloud.Anonymize.Owner = "Maria Schmidt"
	cfg.Cloud.Anonymize.Policy = map[string]string{"iban": "keep_local"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "state"), cloudStoreOptions(cfg, store.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	courier := &wireCourier{}
	ctx := context.Background()
	cloud, run, err := wireCloud(ctx, cfg, st, courier, slog.New(slog.DiscardHandler), "v9", nil)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := cloud.Generate(ctx, agent.Query{Text: "Remind Maria Schmidt"}, nil)
	if err != nil || ans.Answer != "echo: Remind Maria Schmidt" || ans.Entities["person"] != 1 {
		t.Fatalf("Generate = %+v, %v", ans, err)
	}
	if cloud.Check(ctx, agent.Query{Text: "IBAN DE89 3704 0044 0532 0130 00"}) != agent.CloudPrivate {
		t.Error("keep_local policy not applied")
	}
	if err := cloud.Defer(ctx, agent.Query{ID: "x", Text: "later, Maria Schmidt", ReplyTo: "r/x"}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(rctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for courier.n() < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v", err)
	}
	if courier.n() != 1 || courier.got[0].Answer != "echo: later, Maria Schmidt" || !courier.got[0].Late {
		t.Fatalf("late deliveries %+v", courier.got)
	}
	hit, ok, _ := st.Get(ctx, agent.CacheKey(agent.Query{Text: "later, Maria Schmidt"}, agent.TierCloud, "v9"))
	if !ok || hit.Answer != "echo: later, Maria Schmidt" {
		t.Errorf("late answer not cached under the agent's version: %+v %v", hit, ok)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, b := range bodies {
		if strings.Contains(b, "Maria") {
			t.Errorf("the owner's name reached the server: %s", b)
		}
		if auths[i] != "Bearer sk-wire-test-0123456789abcdef" {
			t.Errorf("Authorization %q", auths[i])
		}
	}
}
