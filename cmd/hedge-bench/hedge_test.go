package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// TestMain removes the binary hedgeBinary built: tens of megabytes a run
// that would otherwise pile up in the temp directory.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// hedgeBinary builds cmd/hedge, the binary the benchmarks measure, once per
// test run, with the cgo flags the test process was started with (make
// test sources scripts/cgo-env.sh).
func hedgeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hedge-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "hedge")
		out, err := exec.Command("go", "build", "-o", binPath, "../hedge").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// ortLibrary runs scripts/fetch-ort.sh (a fresh machine downloads the
// library once) and returns the library's path.
func ortLibrary(t *testing.T) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command("bash", "../../scripts/fetch-ort.sh")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("fetch-ort.sh: %v\n%s", err, errb.String())
	}
	return strings.TrimSpace(out.String())
}
