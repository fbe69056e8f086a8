// Package packaging builds hedge's Debian packages (.deb) for amd64 and
// arm64 with nfpm: the binary, llama.cpp's CPU variants (every one of the
// architecture, in /usr/lib/hedge, where hedge looks: ../lib/hedge from
// /usr/bin), ONNX Runtime's library, the systemd unit
// (rendered by package systemd, exactly as `hedge install` writes it), a
// drop-in for the package's static user, sysusers.d and tmpfiles.d entries
// and the default config, which postinst copies to /etc/hedge when there is
// none (not a conffile: dpkg would stop an unattended upgrade at a prompt
// whenever the admin's file and the packaged one both changed, or when a
// `hedge install` wrote it first). cmd/hedge-pkg is its command line.
package packaging

import (
	"debug/elf"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/hedge-edge/hedge/systemd"
)

// The files the package installs besides the binary and the library.
var (
	//go:embed hedge.sysusers
	sysusersText []byte
	//go:embed hedge.tmpfiles
	tmpfilesText []byte
	//go:embed hedge.service.d-deb.conf
	dropinText []byte
	//go:embed config.yaml
	configText []byte
	//go:embed postinst
	postinstText []byte
	//go:embed prerm
	prermText []byte
	//go:embed postrm
	postrmText []byte
)

// Paths inside the package.
const (
	BinaryPath  = systemd.DefaultBinary // /usr/bin/hedge
	LibraryPath = "/usr/lib/hedge/libonnxruntime.so.1"
	VariantDir  = "/usr/lib/hedge"      // libggml-cpu-*.so
	ConfigPath  = systemd.DefaultConfig // /etc/hedge/config.yaml, written by postinst
	// DefaultConfigPath is the packaged default config: postinst copies it
	// to ConfigPath when that is absent, and it stays for reference.
	DefaultConfigPath = "/usr/share/hedge/config.yaml"
	UnitPath          = "/lib/systemd/system/hedge.service"
	DropinPath        = "/lib/systemd/system/hedge.service.d/10-deb.conf"
	SysusersPath      = "/usr/lib/sysusers.d/hedge.conf"
	TmpfilesPath      = "/usr/lib/tmpfiles.d/hedge.conf"
)

// ErrWrongArch is returned when the binary or the library handed to Build
// is not built for the package's architecture.
var ErrWrongArch = errors.New("built for another architecture")

// Options say what to package.
type Options struct {
	// Arch is the Debian architecture: amd64 or arm64.
	Arch string
	// Binary is hedge built for Arch; Library is libonnxruntime.so.1 for
	// Arch (scripts/fetch-ort.sh x64|arm64).
	Binary  string
	Library string
	// Variants are llama.cpp's CPU variants for Arch, the libggml-cpu-*.so
	// of the build Binary links (scripts/cgo-env.sh's HEDGE_LLAMA_DIR/lib).
	Variants []string
	// Version is the Debian version (see DebVersion).
	Version string
	// OutDir receives the package, named hedge_<version>_<arch>.deb.
	OutDir string
	// MTime stamps every file, so the same inputs give the same package
	// (zero: the Unix epoch).
	MTime time.Time
}

var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// Build writes the .deb and returns its path.
func Build(o Options) (string, error) {
	want, ok := machines[o.Arch]
	if !ok {
		return "", fmt.Errorf("package: arch %q: must be amd64 or arm64", o.Arch)
	}
	if o.Version == "" || !debVersionRe.MatchString(o.Version) {
		return "", fmt.Errorf("package: version %q: must start with a digit and hold only letters, digits and . + ~", o.Version)
	}
	glibc, cxx, err := elfNeeds(o.Binary, want)
	if err != nil {
		return "", fmt.Errorf("package: binary: %w", err)
	}
	if _, _, err := elfNeeds(o.Library, want); err != nil {
		return "", fmt.Errorf("package: library: %w", err)
	}
	if len(o.Variants) == 0 {
		return "", errors.New("package: no llama.cpp CPU variants: the LLM tier would be off on every machine")
	}
	for _, v := range o.Variants {
		base := filepath.Base(v)
		if !variantRe.MatchString(base) {
			return "", fmt.Errorf("package: variant %s: not a libggml-cpu-*.so file", v)
		}
		vglibc, vcxx, err := elfNeeds(v, want)
		if err != nil {
			return "", fmt.Errorf("package: variant: %w", err)
		}
		// The package depends on what its newest-needing file needs.
		if lessVersion(glibc, vglibc) {
			glibc = vglibc
		}
		if cxx == "" || (vcxx != "" && lessVersion(cxx, vcxx)) {
			cxx = vcxx
		}
	}
	if o.MTime.IsZero() {
		o.MTime = time.Unix(0, 0).UTC()
	}

	// nfpm reads every file from disk: stage the generated ones.
	stage, err := os.MkdirTemp("", "hedge-pkg-")
	if err != nil {
		return "", fmt.Errorf("package: %w", err)
	}
	defer os.RemoveAll(stage)
	unit, err := systemd.Unit(systemd.Options{Binary: BinaryPath, Config: ConfigPath})
	if err != nil {
		return "", fmt.Errorf("package: %w", err)
	}
	staged := map[string][]byte{
		"hedge.service": unit, "10-deb.conf": dropinText, "sysusers.conf": sysusersText,
		"tmpfiles.conf": tmpfilesText, "config.yaml": configText,
		"postinst": postinstText, "prerm": prermText, "postrm": postrmText,
	}
	for name, data := range staged {
		if err := os.WriteFile(filepath.Join(stage, name), data, 0o644); err != nil {
			return "", fmt.Errorf("package: %w", err)
		}
	}
	in := func(name string) string { return filepath.Join(stage, name) }
	mode := func(m os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Mode: m, Owner: "root", Group: "root", MTime: o.MTime}
	}

	contents := files.Contents{
		{Source: o.Binary, Destination: BinaryPath, FileInfo: mode(0o755)},
		{Source: o.Library, Destination: LibraryPath, FileInfo: mode(0o644)},
	}
	for _, v := range o.Variants {
		contents = append(contents, &files.Content{Source: v, Destination: VariantDir + "/" + filepath.Base(v), FileInfo: mode(0o644)})
	}
	contents = append(contents,
		&files.Content{Source: in("hedge.service"), Destination: UnitPath, FileInfo: mode(0o644)},
		&files.Content{Source: in("10-deb.conf"), Destination: DropinPath, FileInfo: mode(0o644)},
		&files.Content{Source: in("sysusers.conf"), Destination: SysusersPath, FileInfo: mode(0o644)},
		&files.Content{Source: in("tmpfiles.conf"), Destination: TmpfilesPath, FileInfo: mode(0o644)},
		&files.Content{Source: in("config.yaml"), Destination: DefaultConfigPath, FileInfo: mode(0o644)},
	)

	depends := []string{"libc6 (>= " + glibc + ")", "libgcc-s1"}
	if cxx != "" {
		depends = append(depends, "libstdc++6 (>= "+cxx+")")
	} else {
		depends = append(depends, "libstdc++6")
	}
	info := &nfpm.Info{
		Name:          "hedge",
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       o.Version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "hedge maintainers <hedge@localhost>",
		Homepage:      "https://github.com/hedge-edge/hedge",
		Description: "hybrid edge AI agent for IoT devices\n" +
			"hedge answers questions from MQTT devices, local programs (Unix socket)\n" +
			"and loopback HTTP from the cheapest tier that can answer well: a cache,\n" +
			"an on-device intent model (ONNX Runtime), a local LLM (llama.cpp) or an\n" +
			"OpenAI-compatible cloud reached with anonymized text.",
		MTime: o.MTime,
		Overridables: nfpm.Overridables{
			Depends:    depends,
			Recommends: []string{"systemd"},
			Contents:   contents,
			Scripts:    nfpm.Scripts{PostInstall: in("postinst"), PreRemove: in("prerm"), PostRemove: in("postrm")},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("package: %w", err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", fmt.Errorf("package: %w", err)
	}
	out := filepath.Join(o.OutDir, deb.Default.ConventionalFileName(info))
	f, err := os.CreateTemp(o.OutDir, ".hedge-*.deb")
	if err != nil {
		return "", fmt.Errorf("package: %w", err)
	}
	defer os.Remove(f.Name())
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("package: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("package: %w", err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return "", fmt.Errorf("package: %w", err)
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return "", fmt.Errorf("package: %w", err)
	}
	return out, nil
}

// glibcxxGCC maps libstdc++'s symbol versions to the GCC release (and so
// Debian's libstdc++6 version) that first shipped them.
var glibcxxGCC = map[int]string{26: "9", 27: "9", 28: "10", 29: "11", 30: "12", 31: "13", 32: "14", 33: "15"}

// elfNeeds checks that path is an ELF file for machine and returns the
// newest glibc symbol version it imports ("2.34") and the GCC release whose
// libstdc++ it needs ("11"; "" when it needs none or an older one).
func elfNeeds(path string, machine elf.Machine) (glibc, gcc string, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	if f.Machine != machine {
		return "", "", fmt.Errorf("%s is %s: %w", path, f.Machine, ErrWrongArch)
	}
	syms, err := f.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	var libc []string
	cxx := 0
	for _, s := range syms {
		if v, ok := strings.CutPrefix(s.Version, "GLIBC_"); ok && versionRe.MatchString(v) {
			libc = append(libc, v)
		}
		if v, ok := strings.CutPrefix(s.Version, "GLIBCXX_3.4."); ok {
			if n, err := strconv.Atoi(v); err == nil && n > cxx {
				cxx = n
			}
		}
	}
	if len(libc) == 0 {
		return "", "", fmt.Errorf("%s imports no versioned glibc symbols: not a dynamically linked glibc program", path)
	}
	sort.Slice(libc, func(i, j int) bool { return lessVersion(libc[i], libc[j]) })
	return libc[len(libc)-1], glibcxxGCC[cxx], nil
}

var versionRe = regexp.MustCompile(`^\d+(\.\d+)*$`)

// variantRe matches the file name of a llama.cpp CPU variant.
var variantRe = regexp.MustCompile(`^libggml-cpu-[A-Za-z0-9._]+\.so$`)

func lessVersion(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

var (
	debVersionRe = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
	describeRe   = regexp.MustCompile(`^v?(\d+(?:\.\d+)*)(?:-(\d+)-g([0-9a-f]+))?(-dirty)?$`)
	shaRe        = regexp.MustCompile(`^([0-9a-f]{7,40})(-dirty)?$`)
)

// DebVersion turns `git describe --tags --always --dirty` output into a
// Debian version that sorts the way the history goes:
//
//	v1.2.3                → 1.2.3
//	v1.2.3-4-gabc1234     → 1.2.3+4.gabc1234
//	abc1234 (no tag yet)  → 0.0.0~git20261128.abc1234 (commit date)
//	…-dirty               → …+dirty
func DebVersion(describe string, commit time.Time) (string, error) {
	describe = strings.TrimSpace(describe)
	if m := describeRe.FindStringSubmatch(describe); m != nil {
		v := m[1]
		if m[2] != "" {
			v += "+" + m[2] + ".g" + m[3]
		}
		if m[4] != "" {
			v += "+dirty"
		}
		return v, nil
	}
	if m := shaRe.FindStringSubmatch(describe); m != nil {
		if commit.IsZero() {
			return "", fmt.Errorf("version of %q: a commit without a tag needs its date", describe)
		}
		v := "0.0.0~git" + commit.UTC().Format("20060102150405") + "." + m[1]
		if m[2] != "" {
			v += "+dirty"
		}
		return v, nil
	}
	return "", fmt.Errorf("version of %q: not git describe --tags --always --dirty output", describe)
}
