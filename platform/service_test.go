package platform

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kardianos/service"

	"github.com/hedge-edge/hedge/systemd"
)

func TestNewServiceRefusesTemplateActions(t *testing.T) {
	_, err := NewService(ServiceOptions{Name: "hedge", Unit: []byte("[Service]\nExecStart={{Path}}\n")})
	if err == nil || errors.Is(err, ErrNoSystemd) {
		t.Fatalf("NewService with an unrendered unit = %v; want a template error", err)
	}
}

// TestNewServiceOnThisMachine checks the service manager detection against
// the real machine: refused with ErrNoSystemd when PID 1 is not systemd,
// else usable, and an uninstalled test unit reads as not installed.
func TestNewServiceOnThisMachine(t *testing.T) {
	s, err := NewService(ServiceOptions{Name: "hedge-test-never-installed"})
	if errors.Is(err, ErrNoSystemd) {
		t.Logf("no systemd here: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.State()
	if err != nil || st != StateNotInstalled {
		t.Fatalf("State of a never-installed unit = %q, %v; want %q", st, err, StateNotInstalled)
	}
}

// TestKardianosWritesUnitVerbatim installs through kardianos/service's real
// systemd backend as a user service under a temp $HOME, so the unit file
// lands in the temp dir, and checks that the file is our unit byte for byte.
// (systemctl --user enable then fails here, having no user manager; the
// file is written before that.)
func TestKardianosWritesUnitVerbatim(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	unit, err := systemd.Unit(systemd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := ServiceOptions{Name: "hedge-kardianos-test", Unit: unit, Binary: "/usr/bin/hedge", Args: []string{"run"}}
	cfg := kardianosConfig(o)
	cfg.Option["UserService"] = true

	var sd service.System
	for _, s := range service.AvailableSystems() {
		if s.String() == "linux-systemd" {
			sd = s
		}
	}
	if sd == nil {
		t.Fatal("kardianos/service has no linux-systemd backend")
	}
	svc, err := sd.New(foreground{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	installErr := svc.Install() // enabling may fail without a user manager
	path := filepath.Join(home, ".config/systemd/user", o.Name+".service")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("kardianos wrote no unit (install: %v): %v", installErr, err)
	}
	if !bytes.Equal(got, unit) {
		t.Fatalf("kardianos changed the unit:\n%s\nwant:\n%s", got, unit)
	}
	if installErr == nil {
		_ = svc.Uninstall()
	}
}

func TestStartErrorSaysWhy(t *testing.T) {
	p := parseProperties("Result=exit-code\nExecMainStatus=78\nInvocationID=0a1b\n\n")
	if p["Result"] != "exit-code" || p["ExecMainStatus"] != "78" || p["InvocationID"] != "0a1b" {
		t.Fatalf("parseProperties = %v", p)
	}
	e := &StartError{Err: errors.New("exit status 1"), Result: "exit-code", Status: 78,
		Log: nonEmptyLines("hedge: config: line 2: unknown key slm.treshold\n\n")}
	want := "start service: exit status 1 (result exit-code, exit status 78)\n  hedge: config: line 2: unknown key slm.treshold"
	if e.Error() != want {
		t.Errorf("StartError = %q, want %q", e.Error(), want)
	}
}
