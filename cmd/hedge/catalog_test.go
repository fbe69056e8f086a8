package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/models"
)

// loopbackCatalog serves a small file on a loopback server and returns a
// catalog that knows it as "tiny-chat", needing ram bytes: the tests pull
// by name without ever reaching the real catalog's URLs. hits counts the
// requests the server answered.
func loopbackCatalog(t *testing.T, ram int64) (models.Catalog, *atomic.Int32) {
	t.Helper()
	blob := bytes.Repeat([]byte("hedge model bytes "), 4096)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.ServeContent(w, r, "tiny-chat.gguf", time.Time{}, bytes.NewReader(blob))
	}))
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(blob)
	return models.Catalog{{
		Name: "tiny-chat", Title: "Tiny-Chat Q8_0", URL: srv.URL + "/org/tiny-chat.gguf",
		SHA256: hex.EncodeToString(sum[:]), Size: int64(len(blob)), License: "Apache-2.0",
		RAM: ram, Boards: []string{"raspberry-pi-5", "generic"},
	}}, &hits
}

// modelsState points the models commands at a fresh state dir.
func modelsState(t *testing.T) string {
	state := t.TempDir()
	t.Setenv("HEDGE_STATE_DIR", state)
	t.Setenv("HEDGE_CONFIG", "")
	return state
}

func runModels(t *testing.T, catalog models.Catalog, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := modelsWith(context.Background(), args, &out, &errb, catalog)
	return rc, out.String(), errb.String()
}

func TestModelsPullByName(t *testing.T) {
	state := modelsState(t)
	catalog, hits := loopbackCatalog(t, 1<<30)
	rc, out, errs := runModels(t, catalog, "pull", "tiny-chat")
	if rc != 0 || !strings.Contains(out, "installed tiny-chat") || !strings.Contains(out, catalog[0].SHA256) {
		t.Fatalf("pull tiny-chat: rc %d\n%s%s", rc, out, errs)
	}
	e, ok, err := models.Open(filepath.Join(state, "models")).Get("tiny-chat")
	if err != nil || !ok || e.Source != catalog[0].URL || e.SHA256 != catalog[0].SHA256 || e.Size != catalog[0].Size || e.File != "tiny-chat.gguf" {
		t.Fatalf("manifest entry %+v, %v, %v", e, ok, err)
	}
	if hits.Load() != 1 {
		t.Fatalf("%d downloads, want 1", hits.Load())
	}
	// Pulled already: nothing is downloaded again.
	if rc, _, errs := runModels(t, catalog, "pull", "tiny-chat"); rc != 0 || hits.Load() != 1 {
		t.Fatalf("second pull: rc %d, %d downloads: %s", rc, hits.Load(), errs)
	}
	if rc, _, _ := runModels(t, catalog, "pull", "tiny-chat", "--name", "chat"); rc != 0 {
		t.Fatal("pull under another name failed")
	}
}

func TestModelsPullByNameRefusals(t *testing.T) {
	modelsState(t)
	catalog, hits := loopbackCatalog(t, 1<<30)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"pull", "no-such-model"}, "no-such-model is not a model hedge knows (tiny-chat; see hedge models list --available)"},
		{[]string{"pull", "tiny-chat", "--sha256", strings.Repeat("ab", 32)}, "is not the checksum of tiny-chat"},
		{[]string{"pull", catalog[0].URL}, "--sha256 is required"},
	}
	for _, c := range cases {
		rc, _, errs := runModels(t, catalog, c.args...)
		if rc != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: rc %d, stderr %q; want 2 and %q", c.args, rc, errs, c.want)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("a refused pull downloaded %d times", hits.Load())
	}
}

func TestModelsListAvailable(t *testing.T) {
	modelsState(t)
	catalog, _ := loopbackCatalog(t, 1536<<20)
	rc, out, _ := runModels(t, catalog, "list", "--available")
	if rc != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "tiny-chat") || !strings.Contains(out, "1.5 GiB") || !strings.Contains(out, "raspberry-pi-5, generic") {
		t.Fatalf("list --available: rc %d\n%s", rc, out)
	}
	if rc, _, errs := runModels(t, catalog, "pull", "tiny-chat", "--name", "mine"); rc != 0 {
		t.Fatal(errs)
	}
	if _, out, _ := runModels(t, catalog, "list", "--available"); !strings.Contains(out, "as mine") {
		t.Fatalf("an installed model is not marked:\n%s", out)
	}

	// The built-in catalog, listed (nothing is downloaded to list it).
	_, out, _ = runModels(t, models.DefaultCatalog(), "list", "--available")
	for _, e := range models.DefaultCatalog() {
		if !strings.Contains(out, e.Name) || !strings.Contains(out, e.Title) || !strings.Contains(out, e.License) {
			t.Errorf("list --available lacks %s:\n%s", e.Name, out)
		}
	}
	t.Logf("hedge models list --available:\n%s", out)
}

// TestDoctorLLMMemory: doctor warns when llm.model needs more memory than
// the board (the platform's fixture facts) has: the catalog's figure for
// a catalog model, an estimate from the file size for any other.
func TestDoctorLLMMemory(t *testing.T) {
	state := modelsState(t)
	catalog, _ := loopbackCatalog(t, 6<<30) // needs 6 GiB
	if rc, _, errs := runModels(t, catalog, "pull", "tiny-chat", "--name", "chat"); rc != 0 {
		t.Fatal(errs)
	}
	big := filepath.Join(t.TempDir(), "big.gguf")
	if f, err := os.Create(big); err != nil || f.Truncate(4<<30) != nil || f.Close() != nil {
		t.Fatalf("sparse 4 GiB file: %v", err)
	}
	cases := []struct {
		model, board string
		status       checkStatus
		want         string
	}{
		{"chat", "pi4", checkWarn, "Tiny-Chat Q8_0 needs about 6.0 GiB, the board has 3.7 GiB: it does not fit"},
		{"chat", "pi5", checkOK, "Tiny-Chat Q8_0 needs about 6.0 GiB, the board has 7.9 GiB"},
		{big, "pi4", checkWarn, "big.gguf (estimated from its size) needs about 5.2 GiB, the board has 3.7 GiB: it does not fit"},
		{big, "generic-x86", checkOK, "the board has 15.3 GiB"},
		{"", "pi4", checkSkip, "llm.model is empty"},
		{"absent", "pi4", checkSkip, "not there to size"},
	}
	for _, c := range cases {
		cfg := config.Default()
		cfg.StateDir = state
		cfg.LLM.Model = c.model
		r := checkLLMMemory(cfg, doctorEnv{Root: "../../platform/testdata/" + c.board, Catalog: catalog})
		if r.Status != c.status || !strings.Contains(r.Detail, c.want) {
			t.Errorf("%s on %s: %s %q; want %s %q", c.model, c.board, r.Status.mark(), r.Detail, c.status.mark(), c.want)
		}
	}
}
