package llm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCgoEnvScript checks the one script that holds the cgo flags: it
// prints eval-able exports, points at llama.h, enables CPU repacking and
// never asks for -march=native.
func TestCgoEnvScript(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		out, err := exec.Command("bash", "../../scripts/cgo-env.sh", arch).Output()
		if err != nil {
			t.Fatalf("cgo-env.sh %s: %v", arch, err)
		}
		env := map[string]string{}
		// Let bash itself undo the quoting, as eval would.
		script := string(out) + "\nfor v in CGO_ENABLED CGO_CPPFLAGS CGO_CFLAGS CGO_CXXFLAGS GOARCH CC; do printf '%s=%s\\n' \"$v\" \"${!v}\"; done\n"
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = append(os.Environ(), "GOARCH=", "CC=")
		res, err := cmd.Output()
		if err != nil {
			t.Fatalf("eval of cgo-env.sh %s output: %v\n%s", arch, err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(res)), "\n") {
			k, v, _ := strings.Cut(line, "=")
			env[k] = v
		}
		if env["CGO_ENABLED"] != "1" {
			t.Errorf("%s: CGO_ENABLED=%q", arch, env["CGO_ENABLED"])
		}
		if !strings.Contains(env["CGO_CPPFLAGS"], "-DGGML_USE_CPU_REPACK") {
			t.Errorf("%s: no CPU repack in %q", arch, env["CGO_CPPFLAGS"])
		}
		found := false
		for _, f := range strings.Fields(env["CGO_CPPFLAGS"]) {
			if dir, ok := strings.CutPrefix(f, "-I"); ok {
				if _, err := os.Stat(filepath.Join(dir, "llama.h")); err == nil {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("%s: no include folder with llama.h in %q", arch, env["CGO_CPPFLAGS"])
		}
		want := map[string]string{"amd64": "-march=x86-64-v3", "arm64": "-march=armv8.2-a+fp16+dotprod"}[arch]
		for _, k := range []string{"CGO_CFLAGS", "CGO_CXXFLAGS"} {
			if !strings.Contains(env[k], want) || !strings.Contains(env[k], "-O3") || strings.Contains(env[k], "native") {
				t.Errorf("%s: %s=%q, want -O3 %s and never native", arch, k, env[k], want)
			}
		}
		if arch == "arm64" && runtime.GOARCH == "amd64" && env["CC"] != "aarch64-linux-gnu-gcc" {
			t.Errorf("arm64 from amd64: CC=%q", env["CC"])
		}
	}
	if err := exec.Command("bash", "../../scripts/cgo-env.sh", "mips").Run(); err == nil {
		t.Error("an unsupported GOARCH was accepted")
	}
}
