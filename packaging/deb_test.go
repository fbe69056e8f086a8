package packaging

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/systemd"
)

// These tests build real packages from a real hedge build and install them
// with dpkg into a scratch root: `dpkg --root=DIR --force-script-chrootless`
// runs the package's own maintainer scripts (with $DPKG_ROOT=DIR) and
// records the conffile in DIR's dpkg database, so the postinst (sysusers,
// tmpfiles, systemctl enable), the conffile handling on reinstall and the
// purge are exercised, not only the file list (which `dpkg -x` would give).

const testVersion = "1.2.3+4.gabc1234"

func repo(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// hedgeBuild builds cmd/hedge for arch with scripts/cgo-env.sh's flags
// (the arm64 cross build through scripts/build-arm64.sh); the Go build
// cache makes this cheap after make build / make build-arm64.
func hedgeBuild(t *testing.T, arch string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "hedge-"+arch)
	r := repo(t)
	env := []string{"VERSION=" + testVersion}
	if arch == "arm64" {
		run(t, r, env, "scripts/build-arm64.sh", out)
	} else {
		run(t, r, env, "bash", "-c", `eval "$(scripts/cgo-env.sh amd64)" && go build -trimpath -ldflags "-X main.version=$VERSION" -o "$0" ./cmd/hedge`, out)
	}
	return out
}

// wantVariants are llama.cpp's CPU variants a package of arch ships.
var wantVariants = map[string][]string{
	"amd64": {"x64", "sse42", "sandybridge", "haswell", "skylakex", "icelake", "alderlake"},
	"arm64": {"armv8.0_1", "armv8.2_1", "armv8.2_2"},
}

// variants are the CPU variants of the llama.cpp build hedgeBuild links
// for arch (scripts/cgo-env.sh's cache; built there when missing).
func variants(t *testing.T, arch string) []string {
	t.Helper()
	dir := strings.TrimSpace(run(t, repo(t), nil, "bash", "-c", `eval "$(scripts/cgo-env.sh "$0")" && echo "$HEDGE_LLAMA_DIR/lib"`, arch))
	vs, err := filepath.Glob(filepath.Join(dir, "libggml-cpu-*.so"))
	if err != nil || len(vs) == 0 {
		t.Fatalf("no CPU variants in %s (%v)", dir, err)
	}
	return vs
}

// ortLibrary fetches (once per machine) ONNX Runtime for a Debian arch.
func ortLibrary(t *testing.T, arch string) string {
	t.Helper()
	a := map[string]string{"amd64": "x64", "arm64": "arm64"}[arch]
	return strings.TrimSpace(run(t, repo(t), nil, "scripts/fetch-ort.sh", a))
}

// entry is one line of dpkg-deb -c.
type entry struct{ mode, owner string }

func contents(t *testing.T, deb string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	sc := bufio.NewScanner(strings.NewReader(run(t, "", nil, "dpkg-deb", "-c", deb)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		m[strings.TrimPrefix(f[len(f)-1], ".")] = entry{f[0], f[1]}
	}
	return m
}

// checkPackage inspects a built package: control fields, the file list
// with modes and owners, the conffile, the unit and the binaries' machine.
func checkPackage(t *testing.T, deb, arch string, machine elf.Machine) {
	t.Helper()
	field := func(name string) string {
		return strings.TrimSpace(run(t, "", nil, "dpkg-deb", "-f", deb, name))
	}
	if got := field("Package"); got != "hedge" {
		t.Errorf("Package: %q", got)
	}
	if got := field("Version"); got != testVersion {
		t.Errorf("Version: %q, want %q", got, testVersion)
	}
	if got := field("Architecture"); got != arch {
		t.Errorf("Architecture: %q, want %q", got, arch)
	}
	if dep := field("Depends"); !regexp.MustCompile(`^libc6 \(>= 2\.\d+\), libgcc-s1, libstdc\+\+6 \(>= \d+\)$`).MatchString(dep) {
		t.Errorf("Depends: %q", dep)
	}
	if base := filepath.Base(deb); base != "hedge_"+testVersion+"_"+arch+".deb" {
		t.Errorf("file name %s", base)
	}

	want := map[string]string{
		BinaryPath: "-rwxr-xr-x", LibraryPath: "-rw-r--r--", DefaultConfigPath: "-rw-r--r--", UnitPath: "-rw-r--r--",
		DropinPath: "-rw-r--r--", SysusersPath: "-rw-r--r--", TmpfilesPath: "-rw-r--r--",
	}
	var elfs []string
	for _, v := range wantVariants[arch] {
		p := VariantDir + "/libggml-cpu-" + v + ".so"
		want[p] = "-rw-r--r--"
		elfs = append(elfs, p)
	}
	got := contents(t, deb)
	for p, mode := range want {
		e, ok := got[p]
		switch {
		case !ok:
			t.Errorf("package lacks %s", p)
		case e.mode != mode || e.owner != "root/root":
			t.Errorf("%s: %s %s, want %s root/root", p, e.mode, e.owner, mode)
		}
	}
	for p, e := range got {
		if _, ok := want[p]; !ok && !strings.HasPrefix(e.mode, "d") {
			t.Errorf("unexpected file %s in the package", p)
		}
	}

	ctrl := t.TempDir()
	run(t, "", nil, "dpkg-deb", "-e", deb, ctrl)
	// No conffile: dpkg would stop an unattended upgrade at its prompt.
	if c, err := os.ReadFile(filepath.Join(ctrl, "conffiles")); err == nil && strings.TrimSpace(string(c)) != "" {
		t.Errorf("conffiles = %q, want none: postinst writes the config", c)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if fi, err := os.Stat(filepath.Join(ctrl, s)); err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("maintainer script %s missing or not executable: %v", s, err)
		}
	}

	x := t.TempDir()
	run(t, "", nil, "dpkg-deb", "-x", deb, x)
	unit, err := systemd.Unit(systemd.Options{Binary: BinaryPath, Config: ConfigPath})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(x, UnitPath)); err != nil || !bytes.Equal(b, unit) {
		t.Errorf("packaged unit differs from systemd.Unit (%v)", err)
	}
	cfg, err := os.ReadFile(filepath.Join(x, DefaultConfigPath))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(cfg)
	if err != nil {
		t.Errorf("packaged config is invalid: %v", err)
	} else if c.SLM.RuntimeLibrary != "" {
		t.Errorf("packaged config sets slm.runtime_library = %q: hedge must find %s by itself", c.SLM.RuntimeLibrary, LibraryPath)
	}
	// hedge looks in ../lib/hedge from its binary (platform.LibraryFolders).
	if lib := filepath.Join(filepath.Dir(filepath.Dir(BinaryPath)), "lib", "hedge"); lib != filepath.Dir(LibraryPath) || lib != VariantDir {
		t.Errorf("libraries in %s and %s, but hedge at %s looks in %s", filepath.Dir(LibraryPath), VariantDir, BinaryPath, lib)
	}
	for _, p := range append([]string{BinaryPath, LibraryPath}, elfs...) {
		f, err := elf.Open(filepath.Join(x, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if f.Machine != machine {
			t.Errorf("%s is %s, want %s", p, f.Machine, machine)
		}
		f.Close()
	}
}

// scratchRoot is an empty dpkg database in a temp dir.
func scratchRoot(t *testing.T, foreign string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if foreign != "" {
		run(t, "", nil, "dpkg", "--root="+root, "--add-architecture", foreign)
	}
	return root
}

// dpkg runs dpkg on the scratch root. --force-depends: the root holds no
// libc package (the libraries are the host's); --force-script-chrootless:
// the root has no shell, so the scripts run outside it with $DPKG_ROOT.
func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	base := []string{"--root=" + root, "--force-script-chrootless", "--force-depends", "--log=/dev/null"}
	if os.Geteuid() != 0 {
		base = append(base, "--force-not-root")
	}
	return run(t, "", nil, "dpkg", append(base, args...)...)
}

// needTools installs what installing into a scratch root runs: the
// postinst's systemd-sysusers, systemd-tmpfiles and systemctl.
func needTools(t *testing.T, pkgs ...string) {
	t.Helper()
	run(t, repo(t), nil, "scripts/apt-ensure.sh", append([]string{"systemd"}, pkgs...)...)
}

// checkInstalled checks what the postinst made of the scratch root.
func checkInstalled(t *testing.T, root string) {
	t.Helper()
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatalf("postinst created no users: %v", err)
	}
	var uid, gid int = -1, -1
	for _, l := range strings.Split(string(passwd), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 7 && f[0] == "hedge" {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			if f[5] != "/var/lib/hedge" || !strings.HasSuffix(f[6], "nologin") {
				t.Errorf("hedge user: %q", l)
			}
		}
	}
	if uid <= 0 || uid >= 1000 {
		t.Fatalf("no system user hedge in %s:\n%s", filepath.Join(root, "etc/passwd"), passwd)
	}
	for _, d := range []string{"var/lib/hedge", "var/lib/hedge/models"} {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil {
			t.Errorf("tmpfiles did not create /%s: %v", d, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o750 || int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("/%s: %v %d:%d, want 0750 %d:%d", d, fi.Mode().Perm(), st.Uid, st.Gid, uid, gid)
		}
	}
	link, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/hedge.service"))
	if err != nil || link != UnitPath {
		t.Errorf("postinst did not enable hedge.service: %q %v", link, err)
	}
	if cfg, err := os.ReadFile(filepath.Join(root, ConfigPath)); err != nil || !bytes.Equal(cfg, configText) {
		t.Errorf("postinst did not write %s from %s: %v", ConfigPath, DefaultConfigPath, err)
	}
}

// checkExposure rates the installed unit with its drop-in, offline.
func checkExposure(t *testing.T, root string) {
	t.Helper()
	cmd := exec.Command("systemd-analyze", "security", "--offline=true", "--root="+root, "--no-pager", "hedge.service")
	out, _ := cmd.CombinedOutput() // exits non-zero above its default threshold; the score decides
	m := regexp.MustCompile(`Overall exposure level for hedge.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security --root: no score:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("installed unit with the .deb's drop-in: exposure %.1f", score)
	if score > 2.0 {
		t.Errorf("exposure %.1f above 2.0:\n%s", score, out)
	}
	if !strings.Contains(string(out), "static non-root user identity") {
		t.Errorf("the drop-in (DynamicUser=no) is not in effect:\n%s", out)
	}
}

// reinstallAndPurge edits the config, reinstalls over a `hedge install`'s
// unit (the edit must stay, the unit must make way), then purges (files,
// state, the config and the enable link must go).
func reinstallAndPurge(t *testing.T, root, deb string) {
	t.Helper()
	cfg := filepath.Join(root, ConfigPath)
	edited := append(mustRead(t, cfg), []byte("# edited by the admin\n")...)
	if err := os.WriteFile(cfg, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/hedge/store.db"), []byte("state"), 0o640); err != nil {
		t.Fatal(err)
	}
	// A `hedge install` meanwhile: its unit in /etc would shadow the
	// package's, so the reinstall sets it aside and enables the package's.
	readme, err := systemd.Unit(systemd.Options{Binary: "/opt/hedge/hedge"})
	if err != nil {
		t.Fatal(err)
	}
	etcUnit := filepath.Join(root, "etc/systemd/system/hedge.service")
	if err := os.WriteFile(etcUnit, readme, 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg(t, root, "-i", deb)
	if !bytes.Equal(mustRead(t, cfg), edited) {
		t.Errorf("reinstall replaced the edited config")
	}
	if _, err := os.Stat(etcUnit); !errors.Is(err, os.ErrNotExist) || !bytes.Equal(mustRead(t, etcUnit+".hedge-install"), readme) {
		t.Errorf("the hedge install's unit is still in the way (%v)", err)
	}
	if link, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/hedge.service")); err != nil || link != UnitPath {
		t.Errorf("after replacing a hedge install's unit, enabled %q (%v), want %s", link, err, UnitPath)
	}
	dpkg(t, root, "--purge", "hedge")
	for _, p := range []string{BinaryPath, LibraryPath, VariantDir, ConfigPath, UnitPath, "/var/lib/hedge", "/etc/systemd/system/multi-user.target.wants/hedge.service"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after purge %s is still there (%v)", p, err)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDebAmd64(t *testing.T) {
	needTools(t)
	bin, lib := hedgeBuild(t, "amd64"), ortLibrary(t, "amd64")
	deb, err := Build(Options{Arch: "amd64", Binary: bin, Library: lib, Variants: variants(t, "amd64"), Version: testVersion, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(deb)
	t.Logf("%s: %d bytes", filepath.Base(deb), fi.Size())
	checkPackage(t, deb, "amd64", elf.EM_X86_64)

	root := scratchRoot(t, "")
	t.Log(dpkg(t, root, "-i", deb))
	checkInstalled(t, root)
	checkExposure(t, root)

	// The installed binary runs, reads the installed config, and doctor
	// loads the installed ONNX Runtime (paths redirected into the root)
	// and the best installed CPU variant, which it finds in ../lib/hedge.
	hedge := filepath.Join(root, BinaryPath)
	if out := run(t, "", nil, hedge, "version"); strings.TrimSpace(out) != "hedge "+testVersion {
		t.Errorf("hedge version: %q", out)
	}
	if out := run(t, "", nil, hedge, "config", "check", filepath.Join(root, ConfigPath)); strings.TrimSpace(out) != "ok" {
		t.Errorf("config check: %q", out)
	}
	out := run(t, "", []string{
		"HEDGE_SLM_RUNTIME_LIBRARY=" + filepath.Join(root, LibraryPath),
		"HEDGE_STATE_DIR=" + filepath.Join(root, "var/lib/hedge"),
		"HEDGE_LLM_MODEL=" + filepath.Join(repo(t), "../shared/models/stories260K.gguf"),
		"HEDGE_CACHE=" + t.TempDir(), // not the build cache: the package's variants
	}, hedge, "doctor", "--config", filepath.Join(root, ConfigPath), "--timeout", "1s")
	t.Logf("installed hedge doctor:\n%s", out)
	if !strings.Contains(out, "✓ onnx runtime  "+filepath.Join(root, LibraryPath)+" loads") {
		t.Errorf("doctor did not load the installed ONNX Runtime:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^✓ cpu +llama\.cpp CPU variant \S+ \(score \d+, ` + regexp.QuoteMeta(filepath.Join(root, VariantDir)) + `/libggml-cpu-`).MatchString(out) {
		t.Errorf("doctor did not load an installed CPU variant:\n%s", out)
	}

	reinstallAndPurge(t, root, deb)
}

func TestDebArm64(t *testing.T) {
	needTools(t, "qemu-user-static", "libc6-arm64-cross", "libstdc++6-arm64-cross")
	bin, lib := hedgeBuild(t, "arm64"), ortLibrary(t, "arm64")
	deb, err := Build(Options{Arch: "arm64", Binary: bin, Library: lib, Variants: variants(t, "arm64"), Version: testVersion, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	checkPackage(t, deb, "arm64", elf.EM_AARCH64)

	root := scratchRoot(t, "arm64")
	t.Log(dpkg(t, root, "-i", deb))
	checkInstalled(t, root)
	checkExposure(t, root)
	out := run(t, "", []string{"QEMU_LD_PREFIX=/usr/aarch64-linux-gnu"}, "qemu-aarch64-static", filepath.Join(root, BinaryPath), "version")
	if strings.TrimSpace(out) != "hedge "+testVersion {
		t.Errorf("installed arm64 hedge version under qemu: %q", out)
	}
	reinstallAndPurge(t, root, deb)
}

func TestBuildRefusesWrongArch(t *testing.T) {
	self, err := os.Executable() // this test binary: amd64
	if err != nil {
		t.Fatal(err)
	}
	lib, vs := ortLibrary(t, "amd64"), variants(t, "amd64")
	bin := hedgeBuild(t, "amd64")
	for _, o := range []Options{
		{Arch: "arm64", Binary: self, Library: lib, Variants: vs},
		{Arch: "amd64", Binary: bin, Library: ortLibrary(t, "arm64"), Variants: vs},
		{Arch: "amd64", Binary: bin, Library: lib, Variants: variants(t, "arm64")},
	} {
		o.Version, o.OutDir = testVersion, t.TempDir()
		if _, err := Build(o); !errors.Is(err, ErrWrongArch) {
			t.Errorf("Build(%s, %s, %s, %v) = %v, want ErrWrongArch", o.Arch, o.Binary, o.Library, o.Variants, err)
		}
		if left, _ := os.ReadDir(o.OutDir); len(left) != 0 {
			t.Errorf("a refused build left %d files in %s", len(left), o.OutDir)
		}
	}
	for _, o := range []Options{
		{Arch: "riscv64", Binary: self, Library: lib, Variants: vs, Version: testVersion},
		{Arch: "amd64", Binary: self, Library: lib, Variants: vs, Version: "v1.0"},
		{Arch: "amd64", Binary: bin, Library: lib, Version: testVersion},                          // no variants
		{Arch: "amd64", Binary: bin, Library: lib, Variants: []string{lib}, Version: testVersion}, // not one
	} {
		o.OutDir = t.TempDir()
		if _, err := Build(o); err == nil {
			t.Errorf("Build(arch %q, version %q) succeeded", o.Arch, o.Version)
		}
	}
}

func TestDebVersion(t *testing.T) {
	commit := time.Date(2026, 11, 28, 12, 9, 59, 0, time.UTC)
	for in, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"1.2.3":                   "1.2.3",
		"v1.2.3-4-gabc1234":       "1.2.3+4.gabc1234",
		"v1.2.3-4-gabc1234-dirty": "1.2.3+4.gabc1234+dirty",
		"v0.9-dirty":              "0.9+dirty",
		"1d24c56":                 "0.0.0~git20261128120959.1d24c56",
		"1d24c56-dirty\n":         "0.0.0~git20261128120959.1d24c56+dirty",
	} {
		got, err := DebVersion(in, commit)
		if err != nil || got != want {
			t.Errorf("DebVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
		if err == nil && !debVersionRe.MatchString(got) {
			t.Errorf("DebVersion(%q) = %q is not a Debian version", in, got)
		}
	}
	for _, bad := range []string{"", "release-candidate", "v1.2.3 rm -rf"} {
		if got, err := DebVersion(bad, commit); err == nil {
			t.Errorf("DebVersion(%q) = %q, want an error", bad, got)
		}
	}
	if _, err := DebVersion("1d24c56", time.Time{}); err == nil {
		t.Error("an untagged commit without a date gave a version")
	}
	// Versions sort as the history goes (dpkg's own comparison).
	order := []string{"0.0.0~git20261128120959.1d24c56", "0.9", "1.2.3", "1.2.3+4.gabc1234", "1.2.4"}
	for i := 1; i < len(order); i++ {
		if err := exec.Command("dpkg", "--compare-versions", order[i-1], "lt", order[i]).Run(); err != nil {
			t.Errorf("dpkg says %s is not below %s", order[i-1], order[i])
		}
	}
}
