package llm

// llama.cpp's CPU kernels are not in the hedge binary: ggml's CPU backend
// is built once per CPU generation as a shared library (libggml-cpu-*.so,
// scripts/build-llama.sh), and hedge loads the best one this CPU runs,
// before any model. The core of llama.cpp is linked into hedge and exports
// the ggml symbols the variants call (-Wl,--dynamic-list).

/*
#cgo LDFLAGS: -lhedge-llama -lstdc++ -lm -ldl -lpthread

#define _GNU_SOURCE // dladdr
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include "ggml-backend.h"

// hedge_llama_build is the key of the llama.cpp build hedge links; each
// variant of the same build carries the same string.
extern const char hedge_llama_build[];
static const char *hedge_build_key(void) { return hedge_llama_build; }

// hedge_probe opens the variant at path on its own (RTLD_LOCAL: nothing of
// it stays visible), asks its ggml_backend_score and closes it. The score
// is 0 when this CPU lacks an instruction the variant was compiled for;
// -1 with *err set (malloc'ed) when the library does not open.
static int hedge_probe(const char *path, char **err) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		*err = strdup(e ? e : "dlopen failed");
		return -1;
	}
	int (*score)(void) = (int (*)(void))dlsym(h, "ggml_backend_score");
	if (score == NULL) {
		*err = strdup("no ggml_backend_score: not a ggml CPU variant");
		dlclose(h);
		return -1;
	}
	int s = score();
	dlclose(h);
	return s;
}

// hedge_features returns the loaded CPU backend's feature list (name/value
// pairs ending with a NULL name) and, in *file, the library it came from.
static struct ggml_backend_feature *hedge_features(ggml_backend_reg_t reg, const char **file) {
	ggml_backend_get_features_t fn = (ggml_backend_get_features_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
	*file = NULL;
	if (fn == NULL) return NULL;
	Dl_info info;
	if (dladdr((void *)fn, &info) != 0) *file = info.dli_fname;
	return fn(reg);
}
static struct ggml_backend_feature *hedge_feature_at(struct ggml_backend_feature *f, int i) { return &f[i]; }
*/
import "C"

import (
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/hedge-edge/hedge/platform"
)

// ErrNoCPUVariant is returned when no folder holds a llama.cpp CPU variant
// that this CPU runs and that belongs to the llama.cpp build hedge links.
// The error names the CPU's features and every folder tried, with why each
// variant was passed over. The LLM tier is then off; nothing else is.
var ErrNoCPUVariant = errors.New("no llama.cpp CPU variant runs on this CPU")

// variantPrefix and variantSuffix frame a variant's file name:
// libggml-cpu-haswell.so is variant haswell.
const (
	variantPrefix = "libggml-cpu-"
	variantSuffix = ".so"
)

// CPUVariant is one libggml-cpu-*.so file.
type CPUVariant struct {
	Name string // haswell, armv8.2_2, …
	Path string
	// Score is ggml's rating of the variant on this CPU: higher is
	// faster, 0 means the CPU lacks an instruction it needs.
	Score int
	// Err says why the file cannot be used at all: another architecture,
	// another llama.cpp build, or a library that does not open.
	Err error
}

// usable reports whether the variant may be loaded.
func (v CPUVariant) usable() bool { return v.Err == nil && v.Score > 0 }

// why is the variant's state in a few words, for errors and doctor.
func (v CPUVariant) why() string {
	switch {
	case v.Err != nil:
		return v.Err.Error()
	case v.Score <= 0:
		return "needs instructions this CPU lacks"
	}
	return fmt.Sprintf("score %d", v.Score)
}

// CPUFolder is one folder looked at for variants.
type CPUFolder struct {
	Dir      string
	Variants []CPUVariant // sorted by name
	Err      error        // the folder could not be listed
}

func (f CPUFolder) String() string {
	switch {
	case f.Err != nil:
		return f.Dir + " (" + f.Err.Error() + ")"
	case len(f.Variants) == 0:
		return f.Dir + " (no " + variantPrefix + "*" + variantSuffix + ")"
	}
	var parts []string
	for _, v := range f.Variants {
		parts = append(parts, v.Name+": "+v.why())
	}
	return f.Dir + " (" + strings.Join(parts, "; ") + ")"
}

// best is the usable variant with the highest score.
func (f CPUFolder) best() (CPUVariant, bool) {
	var b CPUVariant
	ok := false
	for _, v := range f.Variants {
		if v.usable() && (!ok || v.Score > b.Score) {
			b, ok = v, true
		}
	}
	return b, ok
}

// CPUBackend is the variant loaded into this process.
type CPUBackend struct {
	Variant CPUVariant
	// Features are ggml's names for what the loaded kernels use (AVX2,
	// FMA, DOTPROD, REPACK, …).
	Features []string
	// Folders are the folders looked at, the chosen one last.
	Folders []CPUFolder
}

// Others lists the other variants of the chosen folder, "name (why)".
func (b *CPUBackend) Others() []string {
	var out []string
	if len(b.Folders) == 0 {
		return nil
	}
	for _, v := range b.Folders[len(b.Folders)-1].Variants {
		if v.Path != b.Variant.Path {
			out = append(out, v.Name+" ("+v.why()+")")
		}
	}
	return out
}

// BuildKey is the key of the llama.cpp build linked into hedge:
// <ollama version>-<arch>-<hash of the flags>. Variants of another build
// are refused: ggml checks only its API version.
func BuildKey() string { return C.GoString(C.hedge_build_key()) }

// CPULibraryCache is where scripts/cgo-env.sh keeps the variants of the
// build hedge links: $HEDGE_CACHE or ~/.cache/hedge, then
// llama/<BuildKey>/lib.
func CPULibraryCache() string {
	base := os.Getenv("HEDGE_CACHE")
	if base == "" {
		if h, err := os.UserHomeDir(); err == nil {
			base = filepath.Join(h, ".cache", "hedge")
		} else {
			base = filepath.Join(os.TempDir(), "hedge-cache")
		}
	}
	return filepath.Join(base, "llama", BuildKey(), "lib")
}

// CPUFolders are the folders hedge looks in for variants, in order: the
// configured one alone when set (llm.cpu_library_dir), else beside the
// binary, ../lib/hedge from it (a package's /usr/bin and /usr/lib/hedge)
// and the build cache.
func CPUFolders(configured string) []string {
	if configured != "" {
		return []string{configured}
	}
	return append(platform.LibraryFolders(), CPULibraryCache())
}

// cpuState is the process's CPU backend: ggml's backend registry is
// process-wide, so the first successful load holds for the process.
var cpuState struct {
	sync.Mutex
	loaded *CPUBackend
}

// LoadCPU loads the best CPU variant found in CPUFolders(configured): the
// first folder that holds a usable one wins. It logs the choice, and why
// any variant could not be used. Once a variant is loaded, later calls
// return it whatever folder they name. With none usable the error wraps
// ErrNoCPUVariant.
func LoadCPU(configured string, log *slog.Logger) (*CPUBackend, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cpuState.Lock()
	defer cpuState.Unlock()
	if cpuState.loaded != nil {
		return cpuState.loaded, nil
	}
	backendInit(log) // ggml's log first: a failed load explains itself
	b := &CPUBackend{}
	key := BuildKey()
	for _, dir := range CPUFolders(configured) {
		f := probeFolder(dir, key)
		b.Folders = append(b.Folders, f)
		for _, v := range f.Variants {
			if v.Err != nil {
				log.Warn("llama.cpp CPU variant not usable", "path", v.Path, "err", v.Err)
			}
		}
		best, ok := f.best()
		if !ok {
			continue
		}
		feats, file, err := loadVariant(best.Path)
		if err != nil {
			best.Err = err
			log.Warn("llama.cpp CPU variant did not load", "path", best.Path, "err", err)
			continue
		}
		if file != "" && file != best.Path {
			log.Warn("llama.cpp CPU kernels come from another file than the one chosen", "chosen", best.Path, "loaded", file)
		}
		b.Variant, b.Features = best, feats
		cpuState.loaded = b
		log.Info("llama.cpp CPU variant", "variant", best.Name, "score", best.Score, "path", best.Path,
			"features", strings.Join(feats, " "), "others", strings.Join(b.Others(), ", "))
		return b, nil
	}
	return nil, noVariantError(b.Folders, configured)
}

// noVariantError words the refusal: the CPU's features and every folder.
func noVariantError(folders []CPUFolder, configured string) error {
	have, lack := CPUFeatures()
	var tried []string
	for _, f := range folders {
		tried = append(tried, f.String())
	}
	fix := "install hedge's package or put the libggml-cpu-*.so of this hedge's build beside it, or set llm.cpu_library_dir"
	if configured != "" {
		fix = "llm.cpu_library_dir must hold the libggml-cpu-*.so of this hedge's build (" + BuildKey() + ")"
	}
	feats := "this CPU has " + strings.Join(have, " ")
	if len(have) == 0 {
		feats = "this CPU has none of " + strings.Join(lack, " ")
	} else if len(lack) > 0 {
		feats += ", lacks " + strings.Join(lack, " ")
	}
	return fmt.Errorf("%w (%s; %s): tried %s; %s", ErrNoCPUVariant,
		runtime.GOARCH, feats, strings.Join(tried, ", "), fix)
}

// probeFolder lists dir's variants and rates each on this CPU.
func probeFolder(dir, key string) CPUFolder {
	f := CPUFolder{Dir: dir}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = errors.New("no such folder")
		}
		f.Err = err
		return f
	}
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), variantPrefix)
		if !ok || !strings.HasSuffix(name, variantSuffix) || e.IsDir() {
			continue
		}
		v := CPUVariant{Name: strings.TrimSuffix(name, variantSuffix), Path: filepath.Join(dir, e.Name())}
		if v.Err = checkVariantFile(v.Path, key); v.Err == nil {
			v.Score, v.Err = probeVariant(v.Path)
		}
		f.Variants = append(f.Variants, v)
	}
	sort.Slice(f.Variants, func(i, j int) bool { return f.Variants[i].Name < f.Variants[j].Name })
	return f
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkVariantFile reads the variant's ELF header and build key without
// loading it: a library of another architecture or another llama.cpp build
// is refused with a plain reason (dlopen's would be obscure, and another
// build's could load and then corrupt memory).
func checkVariantFile(path, key string) error {
	f, err := elf.Open(path)
	var fe *elf.FormatError
	switch {
	case errors.As(err, &fe):
		return errors.New("not an ELF shared library")
	case err != nil:
		return err
	}
	defer f.Close()
	if want := elfMachine[runtime.GOARCH]; f.Machine != want {
		return fmt.Errorf("built for %s, this hedge is %s", f.Machine, runtime.GOARCH)
	}
	got, err := elfString(f, "hedge_llama_build")
	if err != nil {
		return fmt.Errorf("not from hedge's llama.cpp build: %w", err)
	}
	if got != key {
		return fmt.Errorf("from llama.cpp build %s, this hedge links %s", got, key)
	}
	return nil
}

// elfString reads the NUL-terminated string a dynamic symbol points at.
func elfString(f *elf.File, name string) (string, error) {
	syms, err := f.DynamicSymbols()
	if err != nil {
		return "", err
	}
	for _, s := range syms {
		if s.Name != name || int(s.Section) >= len(f.Sections) || s.Size == 0 || s.Size > 256 {
			continue
		}
		sec := f.Sections[s.Section]
		if s.Value < sec.Addr || s.Value+s.Size > sec.Addr+sec.Size {
			break
		}
		b := make([]byte, s.Size)
		if _, err := sec.ReadAt(b, int64(s.Value-sec.Addr)); err != nil {
			return "", err
		}
		str, _, _ := strings.Cut(string(b), "\x00")
		return str, nil
	}
	return "", fmt.Errorf("no %s symbol", name)
}

// probeVariant opens the variant alone and returns its score.
func probeVariant(path string) (int, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var cerr *C.char
	s := int(C.hedge_probe(cp, &cerr))
	if cerr != nil {
		msg := C.GoString(cerr)
		C.free(unsafe.Pointer(cerr))
		return 0, errors.New(strings.TrimPrefix(msg, path+": "))
	}
	return s, nil
}

// loadVariant registers the variant's CPU backend with ggml. It loads that
// file and no other (ggml_backend_load, not a folder scan), so what hedge
// logs is what runs, and GGML_BACKEND_PATH plays no part. It returns ggml's
// feature names and the file the kernels were loaded from.
func loadVariant(path string) (feats []string, file string, err error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	takeErrors()
	reg := C.ggml_backend_load(cp)
	if reg == nil {
		why := takeErrors()
		if why == "" {
			why = "ggml_backend_load refused it"
		}
		return nil, "", errors.New(why)
	}
	var cfile *C.char
	list := C.hedge_features(reg, &cfile)
	if cfile != nil {
		file = C.GoString(cfile)
	}
	for i := 0; list != nil; i++ {
		f := C.hedge_feature_at(list, C.int(i))
		if f.name == nil {
			break
		}
		n, v := C.GoString(f.name), C.GoString(f.value)
		if v != "1" {
			n += "=" + v
		}
		feats = append(feats, n)
	}
	return feats, file, nil
}

// cpuFeature is one instruction-set extension that decides which variant
// a CPU gets, named as /proc/cpuinfo names it.
type cpuFeature struct {
	name string
	has  bool
}

// CPUFeatures returns, in /proc/cpuinfo's names, the extensions that decide
// llama.cpp's variant which this CPU has and lacks. They are read as ggml
// reads them (CPUID on x86, the kernel's HWCAP on Arm), so an emulated CPU
// reports what it emulates.
func CPUFeatures() (have, lack []string) {
	var fs []cpuFeature
	switch runtime.GOARCH {
	case "amd64":
		x := cpu.X86
		fs = []cpuFeature{{"sse4_2", x.HasSSE42}, {"avx", x.HasAVX}, {"f16c", x.HasF16C}, {"fma", x.HasFMA},
			{"bmi2", x.HasBMI2}, {"avx2", x.HasAVX2}, {"avx_vnni", x.HasAVXVNNI}, {"avx512f", x.HasAVX512F},
			{"avx512bw", x.HasAVX512BW}, {"avx512vbmi", x.HasAVX512VBMI}, {"avx512_vnni", x.HasAVX512VNNI}}
	case "arm64":
		a := cpu.ARM64
		fs = []cpuFeature{{"asimd", a.HasASIMD}, {"atomics", a.HasATOMICS}, {"asimddp", a.HasASIMDDP},
			{"asimdhp", a.HasASIMDHP}, {"i8mm", a.HasI8MM}, {"sve", a.HasSVE}, {"sve2", a.HasSVE2}}
	}
	for _, f := range fs {
		if f.has {
			have = append(have, f.name)
		} else {
			lack = append(lack, f.name)
		}
	}
	return have, lack
}
