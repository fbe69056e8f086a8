package models

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestCatalogLookup(t *testing.T) {
	c := DefaultCatalog()
	e, ok := c.Lookup("qwen2.5-0.5b-instruct")
	if !ok || e.Title != "Qwen2.5-0.5B-Instruct Q4_K_M" || e.File() != "qwen2.5-0.5b-instruct-q4_k_m.gguf" {
		t.Fatalf("Lookup(qwen2.5-0.5b-instruct) = %+v, %v", e, ok)
	}
	if _, ok := c.Lookup("qwen2.5-0.5b"); ok {
		t.Fatal("a name is looked up exactly")
	}
	if got, ok := c.BySHA256(strings.ToUpper(e.SHA256)); !ok || got.Name != e.Name {
		t.Fatalf("BySHA256 = %+v, %v", got, ok)
	}
	if _, ok := c.BySHA256(strings.Repeat("0", 64)); ok {
		t.Fatal("BySHA256 found an unknown checksum")
	}
	o := e.PullOptions()
	if o.URL != e.URL || o.SHA256 != e.SHA256 || o.Name != e.Name {
		t.Fatalf("PullOptions = %+v", o)
	}
}

// revisionURL is a file at a pinned commit of a Hugging Face repository.
var revisionURL = regexp.MustCompile(`^https://huggingface\.co/[\w.-]+/[\w.-]+/resolve/[0-9a-f]{40}/[\w.-]+\.gguf$`)

// TestCatalogEntriesAreComplete: every entry can be pulled as it stands
// (a valid name, a pinned https URL, a full lowercase checksum, a size)
// and says what it needs and suits.
func TestCatalogEntriesAreComplete(t *testing.T) {
	boards := map[string]bool{"raspberry-pi": true, "raspberry-pi-4": true, "raspberry-pi-5": true, "jetson-orin-nano": true, "jetson": true, "generic": true}
	seen := map[string]bool{}
	for _, e := range DefaultCatalog() {
		if !ValidName(e.Name) || seen[e.Name] {
			t.Errorf("%q: invalid or repeated name", e.Name)
		}
		seen[e.Name] = true
		if !revisionURL.MatchString(e.URL) {
			t.Errorf("%s: URL %s is not a file at a pinned revision", e.Name, e.URL)
		}
		if _, err := url.Parse(e.URL); err != nil {
			t.Errorf("%s: %v", e.Name, err)
		}
		if len(e.SHA256) != 64 || strings.Trim(e.SHA256, "0123456789abcdef") != "" {
			t.Errorf("%s: sha256 %q", e.Name, e.SHA256)
		}
		if e.Size <= 0 || e.RAM <= e.Size || e.License == "" || e.Title == "" || len(e.Boards) == 0 {
			t.Errorf("%s: incomplete entry %+v", e.Name, e)
		}
		for _, b := range e.Boards {
			if !boards[b] {
				t.Errorf("%s: board %q is not a platform kind", e.Name, b)
			}
		}
	}
}

func TestResolveNamesTheCatalogPull(t *testing.T) {
	s := Open(t.TempDir())
	_, _, err := s.Resolve("qwen2.5-0.5b-instruct")
	if err == nil || !strings.Contains(err.Error(), "`hedge models pull qwen2.5-0.5b-instruct`") {
		t.Fatalf("Resolve of a catalog name not installed: %v", err)
	}
	_, _, err = s.Resolve("my-model")
	if err == nil || !strings.Contains(err.Error(), "--sha256 HEX --name my-model") {
		t.Fatalf("Resolve of an unknown name: %v", err)
	}
}
