package llm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCgoEnvScript checks the one script that holds llama.cpp's flags: it
// prints eval-able exports, points at llama.h and at a finished build of
// llama.cpp in the cache (its static library, the symbols hedge exports
// and every CPU variant of the architecture), and never names a CPU:
// no -march beyond the baseline, never native.
func TestCgoEnvScript(t *testing.T) {
	variants := map[string][]string{
		"amd64": {"x64", "sse42", "sandybridge", "haswell", "skylakex", "icelake", "alderlake"},
		"arm64": {"armv8.0_1", "armv8.2_1", "armv8.2_2"},
	}
	for _, arch := range []string{"amd64", "arm64"} {
		out, err := exec.Command("bash", "../../scripts/cgo-env.sh", arch).Output()
		if err != nil {
			t.Fatalf("cgo-env.sh %s: %v", arch, err)
		}
		env := map[string]string{}
		// Let bash itself undo the quoting, as eval would.
		script := string(out) + "\nfor v in CGO_ENABLED CGO_CPPFLAGS CGO_CFLAGS CGO_CXXFLAGS CGO_LDFLAGS HEDGE_LLAMA_DIR GOARCH CC; do printf '%s=%s\\n' \"$v\" \"${!v}\"; done\n"
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
		dir := env["HEDGE_LLAMA_DIR"]
		if !strings.Contains(filepath.Base(dir), "-"+arch+"-") {
			t.Errorf("%s: HEDGE_LLAMA_DIR %q is not keyed by the architecture", arch, dir)
		}
		for _, want := range []string{"-L" + dir, "-Wl,--dynamic-list=" + filepath.Join(dir, "ggml.dynlist")} {
			if !strings.Contains(env["CGO_LDFLAGS"], want) {
				t.Errorf("%s: CGO_LDFLAGS %q lacks %s", arch, env["CGO_LDFLAGS"], want)
			}
		}
		files := []string{"libhedge-llama.a", "ggml.dynlist", "build.txt"}
		for _, v := range variants[arch] {
			files = append(files, "lib/libggml-cpu-"+v+".so")
		}
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: the build lacks %s: %v", arch, f, err)
			}
		}
		if libs, _ := filepath.Glob(filepath.Join(dir, "lib", "*")); len(libs) != len(variants[arch]) {
			t.Errorf("%s: %d files in lib/, want the %d variants: %v", arch, len(libs), len(variants[arch]), libs)
		}
		all := env["CGO_CPPFLAGS"] + env["CGO_CFLAGS"] + env["CGO_CXXFLAGS"] + env["CGO_LDFLAGS"]
		if strings.Contains(all, "-march") || strings.Contains(all, "-mcpu") || strings.Contains(all, "native") {
			t.Errorf("%s: cgo flags name a CPU: %q", arch, all)
		}
		if arch == "arm64" && runtime.GOARCH == "amd64" && env["CC"] != "aarch64-linux-gnu-gcc" {
			t.Errorf("arm64 from amd64: CC=%q", env["CC"])
		}
	}
	if err := exec.Command("bash", "../../scripts/cgo-env.sh", "mips").Run(); err == nil {
		t.Error("an unsupported GOARCH was accepted")
	}
}
