package llm

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// buildVariants are the CPU variants of the llama.cpp build this test
// binary links, in scripts/cgo-env.sh's cache.
func buildVariants(t *testing.T) []string {
	t.Helper()
	vs, err := filepath.Glob(filepath.Join(CPULibraryCache(), variantPrefix+"*"+variantSuffix))
	if err != nil || len(vs) == 0 {
		t.Fatalf("no CPU variants in %s (run the tests with scripts/cgo-env.sh's flags): %v", CPULibraryCache(), err)
	}
	return vs
}

func TestBuildKey(t *testing.T) {
	k := BuildKey()
	if !strings.Contains(k, "-"+runtime.GOARCH+"-") || !strings.HasPrefix(k, "v") {
		t.Errorf("BuildKey() = %q, want <ollama version>-%s-<hash>", k, runtime.GOARCH)
	}
}

func TestCPUFolders(t *testing.T) {
	t.Setenv("HEDGE_CACHE", "/cache")
	if got := CPUFolders("/opt/variants"); len(got) != 1 || got[0] != "/opt/variants" {
		t.Errorf("configured: %v, want only it", got)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ = filepath.EvalSymlinks(exe)
	bin := filepath.Dir(exe)
	want := []string{bin, filepath.Join(filepath.Dir(bin), "lib", "hedge"), filepath.Join("/cache", "llama", BuildKey(), "lib")}
	if got := CPUFolders(""); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("default folders %v, want %v", got, want)
	}
}

// copyFile copies src to dst, passing the bytes through edit.
func copyFile(t *testing.T, src, dst string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		b = edit(b)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestProbeFolder rates a folder holding this build's variants and files
// that must be passed over, each with its reason: another architecture,
// another llama.cpp build, not a library at all.
func TestProbeFolder(t *testing.T) {
	dir := t.TempDir()
	vs := buildVariants(t)
	for _, v := range vs {
		copyFile(t, v, filepath.Join(dir, filepath.Base(v)), nil)
	}
	x64 := filepath.Join(CPULibraryCache(), variantPrefix+map[string]string{"amd64": "x64", "arm64": "armv8.0_1"}[runtime.GOARCH]+variantSuffix)
	key := BuildKey()
	other := key[:len(key)-4] + "beef"
	copyFile(t, x64, filepath.Join(dir, variantPrefix+"otherbuild"+variantSuffix), func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(key), []byte(other))
	})
	foreign := elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		foreign = elf.EM_X86_64
	}
	copyFile(t, x64, filepath.Join(dir, variantPrefix+"otherarch"+variantSuffix), func(b []byte) []byte {
		binary.LittleEndian.PutUint16(b[18:], uint16(foreign)) // e_machine
		return b
	})
	copyFile(t, "../../go.mod", filepath.Join(dir, variantPrefix+"text"+variantSuffix), nil)
	copyFile(t, "../../go.mod", filepath.Join(dir, "libsomething-else.so"), nil)

	f := probeFolder(dir, key)
	t.Logf("%s", f)
	if f.Err != nil || len(f.Variants) != len(vs)+3 {
		t.Fatalf("%d variants (%v), want %d", len(f.Variants), f.Err, len(vs)+3)
	}
	usable := 0
	for _, v := range f.Variants {
		var want string
		switch v.Name {
		case "otherbuild":
			want = "from llama.cpp build " + other + ", this hedge links " + key
		case "otherarch":
			want = "built for " + foreign.String()
		case "text":
			want = "not an ELF shared library"
		}
		switch {
		case want != "" && (v.Err == nil || !strings.Contains(v.Err.Error(), want)):
			t.Errorf("%s: %v, want %q", v.Name, v.Err, want)
		case want == "" && v.Err != nil:
			t.Errorf("%s: %v", v.Name, v.Err)
		case v.usable():
			usable++
		}
	}
	best, ok := f.best()
	if usable == 0 || !ok || best.Score <= 0 {
		t.Fatalf("no usable variant of this build on this CPU: %s", f)
	}
	for _, v := range f.Variants {
		if v.usable() && v.Score > best.Score {
			t.Errorf("best is %s (%d), but %s scores %d", best.Name, best.Score, v.Name, v.Score)
		}
	}

	if f := probeFolder(filepath.Join(dir, "absent"), key); f.Err == nil || f.String() != filepath.Join(dir, "absent")+" (no such folder)" {
		t.Errorf("absent folder: %s", f)
	}
	if f := probeFolder(t.TempDir(), key); len(f.Variants) != 0 || !strings.HasSuffix(f.String(), "(no libggml-cpu-*.so)") {
		t.Errorf("empty folder: %s", f)
	}
}

// TestVariantsResolve checks that this binary exports every ggml symbol
// any variant of its build calls (-Wl,--dynamic-list): a variant only
// loads when each one resolves, and the static link keeps only what hedge
// itself references unless it is exported.
func TestVariantsResolve(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, err := ef.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF {
			exported[s.Name] = true
		}
	}
	for _, v := range buildVariants(t) {
		f, err := elf.Open(v)
		if err != nil {
			t.Fatal(err)
		}
		vs, err := f.DynamicSymbols()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range vs {
			if s.Section != elf.SHN_UNDEF || !strings.HasPrefix(s.Name, "ggml_") && !strings.HasPrefix(s.Name, "gguf_") {
				continue
			}
			n++
			if !exported[s.Name] {
				t.Errorf("%s needs %s, which this binary does not export", filepath.Base(v), s.Name)
			}
		}
		if n < 10 {
			t.Errorf("%s imports only %d ggml symbols: not linked against ggml-base?", filepath.Base(v), n)
		}
	}
}

// TestLoadCPU loads this machine's best variant once for the process; a
// later call returns it whatever folder it names.
func TestLoadCPU(t *testing.T) {
	b, err := LoadCPU(CPULibraryCache(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("variant %s (score %d): %s; others: %s", b.Variant.Name, b.Variant.Score, strings.Join(b.Features, " "), strings.Join(b.Others(), ", "))
	if filepath.Dir(b.Variant.Path) != CPULibraryCache() || b.Variant.Score <= 0 {
		t.Errorf("loaded %+v", b.Variant)
	}
	feats := " " + strings.Join(b.Features, " ") + " "
	for _, want := range []string{" REPACK ", " LLAMAFILE "} {
		if !strings.Contains(feats, want) {
			t.Errorf("features %q lack%s", feats, want)
		}
	}
	if len(b.Others()) != len(buildVariants(t))-1 {
		t.Errorf("others %v", b.Others())
	}
	again, err := LoadCPU(t.TempDir(), nil)
	if err != nil || again != b {
		t.Errorf("second LoadCPU = %v, %v; want the first", again, err)
	}
}

func TestNoVariantError(t *testing.T) {
	folders := []CPUFolder{
		{Dir: "/usr/bin"},
		{Dir: "/usr/lib/hedge", Variants: []CPUVariant{
			{Name: "armv8.0_1", Err: errors.New("built for EM_AARCH64, this hedge is amd64")},
			{Name: "haswell", Score: 0},
		}},
		{Dir: "/nowhere", Err: errors.New("no such folder")},
	}
	err := noVariantError(folders, "")
	if !errors.Is(err, ErrNoCPUVariant) {
		t.Fatalf("%v does not wrap ErrNoCPUVariant", err)
	}
	have, _ := CPUFeatures()
	for _, want := range []string{
		"no llama.cpp CPU variant runs on this CPU", runtime.GOARCH, "this CPU has",
		"/usr/bin (no libggml-cpu-*.so)",
		"/usr/lib/hedge (armv8.0_1: built for EM_AARCH64, this hedge is amd64; haswell: needs instructions this CPU lacks)",
		"/nowhere (no such folder)", "set llm.cpu_library_dir",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if len(have) > 0 && !strings.Contains(err.Error(), have[0]) {
		t.Errorf("%q does not name the CPU's features %v", err, have)
	}
	if err := noVariantError(folders[:1], "/opt/v"); !strings.Contains(err.Error(), "llm.cpu_library_dir must hold") || !strings.Contains(err.Error(), BuildKey()) {
		t.Errorf("configured folder: %v", err)
	}
}
