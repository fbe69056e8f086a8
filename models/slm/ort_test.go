package slm

import (
	"bytes"
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
