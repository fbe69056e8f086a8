package systemd

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest overall exposure systemd-analyze security may
// give the unit (0 = fully locked down, 10 = no sandbox at all).
const maxExposure = 2.0

// directives returns every key=value of the unit; a key set twice keeps
// all its values in order.
func directives(t *testing.T, unit []byte) map[string][]string {
	t.Helper()
	d := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %q is not key=value", line)
		}
		d[k] = append(d[k], v)
	}
	return d
}

func TestUnitRendersPaths(t *testing.T) {
	u, err := Unit(Options{Binary: "/usr/local/bin/hedge", Config: "/etc/hedge/site.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	d := directives(t, u)
	if got, want := d["ExecStart"], []string{"/usr/local/bin/hedge run --config /etc/hedge/site.yaml"}; !equal(got, want) {
		t.Errorf("ExecStart = %q, want %q", got, want)
	}
	if bytes.Contains(u, []byte("{{")) {
		t.Error("rendered unit still holds a template action; kardianos/service would try to expand it")
	}

	def, err := Unit(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := directives(t, def)["ExecStart"], []string{DefaultBinary + " run --config " + DefaultConfig}; !equal(got, want) {
		t.Errorf("default ExecStart = %q, want %q", got, want)
	}
}

// TestUnitDirectives pins what the issue and the rest of hedge rely on.
func TestUnitDirectives(t *testing.T) {
	u, err := Unit(Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := directives(t, u)
	want := map[string]string{
		"Type":                     "notify",
		"NotifyAccess":             "main",
		"User":                     "hedge",
		"Group":                    "hedge",
		"StateDirectory":           "hedge",
		"StateDirectoryMode":       "0750",
		"RuntimeDirectory":         "hedge",
		"RuntimeDirectoryMode":     "0750",
		"ConfigurationDirectory":   "hedge",
		"Restart":                  "on-failure",
		"RestartPreventExitStatus": strconv.Itoa(ExitConfig),
		"WatchdogSec":              "30s",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"ProtectHome":              "yes",
		"PrivateTmp":               "yes",
		"PrivateDevices":           "yes",
		"RestrictAddressFamilies":  "AF_UNIX AF_INET AF_INET6",
		"MemoryDenyWriteExecute":   "yes",
		"SystemCallArchitectures":  "native",
		"SystemCallErrorNumber":    "EPERM",
		"CapabilityBoundingSet":    "",
		"UMask":                    "0027",
	}
	for k, v := range want {
		got, ok := d[k]
		if !ok || got[len(got)-1] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if got := d["SystemCallFilter"]; !equal(got, []string{"@system-service", "~@privileged @resources"}) {
		t.Errorf("SystemCallFilter = %q", got)
	}
	// hedge reads /proc/loadavg, /proc/meminfo, /proc/cpuinfo, /proc/uptime,
	// /proc/device-tree and /sys/class/thermal for its device facts: the
	// sandbox may make them read-only but must not hide them.
	if v, ok := d["ProcSubset"]; ok && v[len(v)-1] != "all" {
		t.Errorf("ProcSubset=%s hides /proc/meminfo and /proc/loadavg from hedge", v[len(v)-1])
	}
	for _, k := range []string{"InaccessiblePaths", "TemporaryFileSystem", "BindPaths", "RootDirectory", "PrivateNetwork", "IPAddressDeny"} {
		if v, ok := d[k]; ok {
			t.Errorf("%s=%q would cut hedge off from /proc, /sys or the network", k, v)
		}
	}
}

func TestUnitRejectsBadPaths(t *testing.T) {
	for _, tc := range []struct{ name, binary, config string }{
		{"relative binary", "bin/hedge", ""},
		{"relative config", "", "config.yaml"},
		{"unclean", "/usr/bin/../bin/hedge", ""},
		{"space splits ExecStart", "/opt/my hedge/hedge", ""},
		{"percent is a specifier", "/opt/hedge%i/hedge", ""},
		{"dollar expands", "/opt/$HOME/hedge", ""},
		{"template braces", "/opt/{{.X}}/hedge", ""},
		{"newline injects a directive", "/usr/bin/hedge\nUser=root", ""},
		{"home is hidden", "/home/pi/hedge", ""},
		{"root's home is hidden", "/root/go/bin/hedge", ""},
		{"tmp is private", "", "/tmp/config.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unit(Options{Binary: tc.binary, Config: tc.config})
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("Unit(%q, %q) error = %v, want ErrBadPath", tc.binary, tc.config, err)
			}
		})
	}
}

// systemdAnalyze returns the systemd-analyze path, installing Debian's
// systemd package when it is missing.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("systemd-analyze"); err == nil {
		return p
	}
	script, err := filepath.Abs("../scripts/apt-ensure.sh")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(script, "systemd").CombinedOutput(); err != nil {
		t.Fatalf("install systemd: %v\n%s", err, out)
	}
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze still missing after installing systemd: %v", err)
	}
	return p
}

// writeUnit renders the unit with an executable that exists on every
// machine (verify checks ExecStart's binary) into a temp dir.
func writeUnit(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		t.Fatal(err)
	}
	u, err := Unit(Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), Name+".service")
	if err := os.WriteFile(path, u, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVerify(t *testing.T) {
	sa := systemdAnalyze(t)
	path := writeUnit(t)
	// --man=no: the Documentation/man page check needs man-db, which has
	// nothing to do with the unit's correctness.
	out, err := exec.Command(sa, "verify", "--man=no", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify exits 0 on some warnings (unknown keys, bad values it ignores):
	// any output at all is a finding.
	if len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify reported:\n%s", out)
	}

	// The same check on a misspelt directive must report it, or the check
	// above could never fail.
	u, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	typo := filepath.Join(t.TempDir(), Name+".service")
	if err := os.WriteFile(typo, bytes.Replace(u, []byte("ProtectClock="), []byte("ProtectClok="), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = exec.Command(sa, "verify", "--man=no", typo).CombinedOutput()
	if !bytes.Contains(out, []byte("ProtectClok")) {
		t.Fatalf("systemd-analyze verify did not report a misspelt key; output:\n%s", out)
	}
}

var overallRe = regexp.MustCompile(`Overall exposure level for \S+: (\d+(?:\.\d+)?)`)

// exposure runs systemd-analyze security on a unit file and returns its
// overall exposure and whether it stayed within maxExposure.
func exposure(t *testing.T, sa, path string) (float64, bool, []byte) {
	t.Helper()
	threshold := strconv.Itoa(int(maxExposure * 10)) // the tool's scale is 0-100
	cmd := exec.Command(sa, "security", "--offline=true", "--no-pager", "--threshold="+threshold, path)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := overallRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure in systemd-analyze security output:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return score, cmd.ProcessState.ExitCode() == 0, out
}

func TestSecurityExposure(t *testing.T) {
	sa := systemdAnalyze(t)
	score, within, out := exposure(t, sa, writeUnit(t))
	t.Logf("systemd-analyze security --offline=true: overall exposure %.1f (limit %.1f)", score, maxExposure)
	if score > maxExposure || !within {
		t.Fatalf("exposure %.1f exceeds %.1f:\n%s", score, maxExposure, out)
	}
}

// TestSecurityExposureDetectsWeakening proves the check above can fail: the
// same unit with its sandbox lines removed must score worse than the limit.
func TestSecurityExposureDetectsWeakening(t *testing.T) {
	sa := systemdAnalyze(t)
	u, err := os.ReadFile(writeUnit(t))
	if err != nil {
		t.Fatal(err)
	}
	var weak bytes.Buffer
	inHardening := false
	for _, line := range strings.SplitAfter(string(u), "\n") {
		if strings.HasPrefix(line, "# Hardening") {
			inHardening = true
		}
		if strings.HasPrefix(line, "[Install]") {
			inHardening = false
		}
		if inHardening || strings.HasPrefix(line, "DynamicUser=") || strings.HasPrefix(line, "User=") || strings.HasPrefix(line, "Group=") {
			continue
		}
		weak.WriteString(line)
	}
	path := filepath.Join(t.TempDir(), "weak.service")
	if err := os.WriteFile(path, weak.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	score, within, _ := exposure(t, sa, path)
	t.Logf("unhardened unit: overall exposure %.1f", score)
	if score <= maxExposure || within {
		t.Fatalf("unhardened unit scored %.1f (within limit: %v); the security check cannot fail", score, within)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
