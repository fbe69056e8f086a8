package slm

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testLib returns ONNX Runtime's library, fetching it with the project's
// script when the cache does not have it yet (a fresh machine).
func testLib(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "fetch-ort.sh"))
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/fetch-ort.sh: %v\n%s", err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

var shared struct {
	once sync.Once
	rt   *Runtime
	err  error
}

// testRuntime opens the process's runtime once for the package's tests; it
// stays open until the test binary exits.
func testRuntime(t testing.TB) *Runtime {
	t.Helper()
	shared.once.Do(func() {
		shared.rt, shared.err = OpenRuntime(testLib(t), 1)
	})
	if shared.err != nil {
		t.Fatalf("open runtime: %v", shared.err)
	}
	return shared.rt
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.rt != nil {
		shared.rt.Close()
	}
	os.Exit(code)
}

// ONNX Runtime 1.30 on Linux starts a telemetry system that persists a
// device id under $XDG_CACHE_HOME or $HOME/.cache/Microsoft and would
// upload events to Microsoft. hedge turns it off before the environment
// exists: a child process with a fresh HOME classifies, and afterwards
// HOME and XDG_CACHE_HOME hold nothing.
func TestNoTelemetryCache(t *testing.T) {
	if lib := os.Getenv("HEDGE_TEST_TELEMETRY_CHILD"); lib != "" {
		rt, err := OpenRuntime(lib, 1)
		if err != nil {
			t.Fatal(err)
		}
		b, _, _, err := Build(context.Background(), toyCorpus(), smallOptions())
		if err != nil {
			t.Fatal(err)
		}
		clf, err := rt.LoadClassifier(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := clf.Classify(context.Background(), "hello"); err != nil {
			t.Fatal(err)
		}
		clf.Close()
		if err := rt.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	home, cache := t.TempDir(), t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoTelemetryCache$", "-test.v")
	cmd.Env = append(os.Environ(), "HEDGE_TEST_TELEMETRY_CHILD="+testLib(t), "HOME="+home, "XDG_CACHE_HOME="+cache)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, dir := range []string{home, cache} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if p != dir {
				t.Errorf("ONNX Runtime wrote %s", p)
			}
			return nil
		})
	}
}
