package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/platform"
	"github.com/hedge-edge/hedge/systemd"
)

// existingBinary is an executable outside the trees the unit's sandbox
// hides, present on every machine.
func existingBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	if p, err = filepath.EvalSymlinks(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInstallDryRun(t *testing.T) {
	bin := existingBinary(t)
	cfgDir := fmt.Sprintf("/etc/hedge-dry-run-test-%d", os.Getpid())
	cfg := cfgDir + "/config.yaml"
	_, unitErrBefore := os.Stat(systemd.DefaultUnitPath)

	var out, errOut bytes.Buffer
	if rc := install([]string{"--dry-run", "--binary", bin, "--config", cfg}, &out, &errOut); rc != 0 {
		t.Fatalf("install --dry-run = %d; stderr: %s", rc, errOut.String())
	}
	o := out.String()
	for _, want := range []string{
		"unit file:   " + systemd.DefaultUnitPath,
		"config file: " + cfg + " (absent; would be written",
		"binary:      " + bin,
		"# ---- " + systemd.DefaultUnitPath + " ----\n",
		"ExecStart=" + bin + " run --config " + cfg + "\n",
		"Type=notify\n",
		"# ---- " + cfg + " ----\n" + defaultConfigText,
	} {
		if !strings.Contains(o, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, o)
		}
	}
	// The printed unit is exactly what install would write.
	unit, err := systemd.Unit(systemd.Options{Binary: bin, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o, string(unit)) {
		t.Error("dry-run output does not hold the rendered unit verbatim")
	}
	// Nothing was touched.
	if _, err := os.Stat(cfgDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run created %s (stat: %v)", cfgDir, err)
	}
	if _, err := os.Stat(systemd.DefaultUnitPath); (err == nil) != (unitErrBefore == nil) {
		t.Errorf("dry run changed %s", systemd.DefaultUnitPath)
	}
}

func TestInstallDryRunExistingConfig(t *testing.T) {
	var out bytes.Buffer
	printPlan(&out, installPlan{Binary: "/usr/bin/hedge", Config: "/etc/hedge/config.yaml", ConfigExists: true, UnitPath: systemd.DefaultUnitPath, Unit: []byte("[Unit]\n")})
	o := out.String()
	if !strings.Contains(o, "config file: /etc/hedge/config.yaml (exists; kept as is)") {
		t.Errorf("existing config not reported as kept:\n%s", o)
	}
	if strings.Contains(o, defaultConfigText) {
		t.Errorf("dry run would print a default config over an existing one:\n%s", o)
	}
}

func TestInstallBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		rc   int
		msg  string
	}{
		{"binary in a home dir", []string{"--dry-run", "--binary", "/home/pi/hedge"}, 1, "hides /home"},
		{"config in tmp", []string{"--dry-run", "--binary", "/usr/bin/hedge", "--config", "/tmp/hedge.yaml"}, 1, "hides /tmp"},
		{"space in path", []string{"--dry-run", "--binary", "/opt/my hedge/hedge"}, 1, "would split or expand"},
		{"stray argument", []string{"--dry-run", "now"}, 2, "unexpected argument"},
		{"unknown flag", []string{"--force"}, 2, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			rc := install(tc.args, &out, &errOut)
			if rc != tc.rc || !strings.Contains(errOut.String(), tc.msg) {
				t.Errorf("install %q = %d, stderr %q; want %d with %q", tc.args, rc, errOut.String(), tc.rc, tc.msg)
			}
			if out.Len() != 0 {
				t.Errorf("a refused install printed a plan:\n%s", out.String())
			}
		})
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	c, err := config.Parse([]byte(defaultConfigText))
	if err != nil {
		t.Fatalf("default config written by install is invalid: %v", err)
	}
	if c.Version != 1 {
		t.Errorf("version = %d", c.Version)
	}
}

func TestEnsureConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "hedge", "config.yaml")
	wrote, err := ensureConfig(path)
	if err != nil || !wrote {
		t.Fatalf("ensureConfig(absent) = %v, %v", wrote, err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != defaultConfigText {
		t.Fatalf("written config = %q, %v", b, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("config mode %v, want 0644 (hedge's transient user must read it)", fi.Mode().Perm())
	}

	// An existing, valid file is kept byte for byte.
	custom := "version: 1\ndevice: greenhouse-3\n"
	os.WriteFile(path, []byte(custom), 0o644)
	if wrote, err := ensureConfig(path); wrote || err != nil {
		t.Fatalf("ensureConfig(valid existing) = %v, %v", wrote, err)
	}
	if b, _ := os.ReadFile(path); string(b) != custom {
		t.Errorf("existing config changed to %q", b)
	}

	// An invalid one stops the install and says why.
	os.WriteFile(path, []byte("version: 1\ndevise: typo\n"), 0o644)
	_, err = ensureConfig(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "devise") {
		t.Fatalf("ensureConfig(invalid) error = %v; want it to name the file and the key", err)
	}
}

// TestStatus runs hedge status against this machine's service manager:
// without systemd it must say so; with systemd it prints one of the states.
func TestStatus(t *testing.T) {
	var out, errOut bytes.Buffer
	if rc := status([]string{"extra"}, &out, &errOut); rc != 2 {
		t.Errorf("status with an argument = %d, want 2", rc)
	}
	out.Reset()
	errOut.Reset()
	rc := status(nil, &out, &errOut)
	_, err := platform.NewService(platform.ServiceOptions{Name: systemd.Name})
	if errors.Is(err, platform.ErrNoSystemd) {
		if rc != 1 || !strings.Contains(errOut.String(), "systemd is not the service manager") {
			t.Fatalf("status without systemd = %d, %q", rc, errOut.String())
		}
		return
	}
	state := strings.TrimSpace(out.String())
	want := map[string]int{"running": 0, "stopped": 3, "failed": 3, "not installed": 4}
	if code, ok := want[state]; !ok || code != rc {
		t.Fatalf("status printed %q with exit code %d", state, rc)
	}
}
