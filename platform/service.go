package platform

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/kardianos/service"
)

// ServiceState is what `hedge status` prints.
type ServiceState string

// The states of the installed service.
const (
	StateRunning      ServiceState = "running"
	StateStopped      ServiceState = "stopped"
	StateFailed       ServiceState = "failed"
	StateNotInstalled ServiceState = "not installed"
)

// ErrNoSystemd is returned by NewService when the machine's service manager
// is not systemd: hedge ships a systemd unit only, and kardianos/service
// would otherwise fall back to a SysV or upstart script hedge never tested.
var ErrNoSystemd = errors.New("systemd is not the service manager here")

// ServiceOptions describe the service to install or control.
type ServiceOptions struct {
	// Name is the unit name without ".service".
	Name string
	// Unit is the complete rendered unit file (systemd.Unit). It is only
	// needed to install.
	Unit []byte
	// Binary is the executable the unit starts; Args its arguments. Both are
	// already part of Unit; kardianos/service wants them too.
	Binary string
	Args   []string
}

// Service installs and controls hedge's systemd unit through
// kardianos/service. It is not safe for concurrent use.
type Service struct {
	svc  service.Service
	name string
}

// NewService returns the service named o.Name. It fails with ErrNoSystemd
// unless systemd manages services on this machine.
func NewService(o ServiceOptions) (*Service, error) {
	if strings.Contains(string(o.Unit), "{{") {
		// kardianos renders SystemdScript through its own template engine;
		// a rendered unit must reach it with nothing left to expand.
		return nil, errors.New("service unit: still holds a {{ }} template action")
	}
	if sys := service.ChosenSystem(); sys == nil || sys.String() != "linux-systemd" {
		name := "none"
		if sys != nil {
			name = sys.String()
		}
		return nil, fmt.Errorf("%w (detected: %s); hedge installs on machines booted with systemd only", ErrNoSystemd, name)
	}
	svc, err := service.New(foreground{}, kardianosConfig(o))
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", o.Name, err)
	}
	return &Service{svc: svc, name: o.Name}, nil
}

// kardianosConfig hands kardianos our own unit as its systemd template
// (option SystemdScript) instead of its built-in one.
func kardianosConfig(o ServiceOptions) *service.Config {
	return &service.Config{
		Name:        o.Name,
		DisplayName: o.Name,
		Description: "hedge edge AI agent",
		Executable:  o.Binary,
		Arguments:   o.Args,
		Option:      service.KeyValue{"SystemdScript": string(o.Unit)},
	}
}

// Install writes the unit file, enables it and reloads systemd. It fails
// when the unit file already exists.
func (s *Service) Install() error {
	if err := s.svc.Install(); err != nil {
		return fmt.Errorf("install service: %w", err)
	}
	return nil
}

// Uninstall disables the unit and removes its file.
func (s *Service) Uninstall() error {
	if err := s.svc.Uninstall(); err != nil {
		return fmt.Errorf("uninstall service: %w", err)
	}
	return nil
}

// Start asks systemd to start the service. A failed start returns a
// *StartError with systemd's reason.
func (s *Service) Start() error {
	if err := s.svc.Start(); err != nil {
		return s.startError(err)
	}
	return nil
}

// StartError is a start systemd reports as failed, with its reason: the
// unit's Result= and main exit status, and the last lines the failed run
// logged (its invocation's journal, hedge's own stderr among them).
type StartError struct {
	Err    error
	Result string // systemd's Result=, e.g. exit-code, timeout, start-limit-hit
	Status int    // ExecMainStatus=: hedge's exit status
	Log    []string
}

func (e *StartError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "start service: %v", e.Err)
	if e.Result != "" {
		fmt.Fprintf(&b, " (result %s, exit status %d)", e.Result, e.Status)
	}
	for _, l := range e.Log {
		b.WriteString("\n  " + l)
	}
	return b.String()
}

func (e *StartError) Unwrap() error { return e.Err }

// startLogLines is how much of the failed run's journal a StartError shows.
const startLogLines = 12

func (s *Service) startError(err error) *StartError {
	e := &StartError{Err: err}
	unit := s.name + ".service"
	out, _ := exec.Command("systemctl", "show", "-p", "Result", "-p", "ExecMainStatus", "-p", "InvocationID", unit).Output()
	props := parseProperties(string(out))
	e.Result = props["Result"]
	e.Status, _ = strconv.Atoi(props["ExecMainStatus"])
	if id := props["InvocationID"]; id != "" {
		out, _ := exec.Command("journalctl", "--no-pager", "-o", "cat", "-n", strconv.Itoa(startLogLines), "_SYSTEMD_INVOCATION_ID="+id).Output()
		e.Log = nonEmptyLines(string(out))
	}
	return e
}

// parseProperties reads systemctl show's KEY=VALUE lines.
func parseProperties(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func nonEmptyLines(out string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

// Stop asks systemd to stop the service.
func (s *Service) Stop() error {
	if err := s.svc.Stop(); err != nil {
		return fmt.Errorf("stop service: %w", err)
	}
	return nil
}

// State reports the service's state; an uninstalled service is
// StateNotInstalled, not an error.
func (s *Service) State() (ServiceState, error) {
	st, err := s.svc.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return StateNotInstalled, nil
	case err != nil && strings.Contains(err.Error(), "failed state"):
		// kardianos reports systemd's "failed" as an error string only.
		return StateFailed, nil
	case err != nil:
		return "", fmt.Errorf("service status: %w", err)
	case st == service.StatusRunning:
		return StateRunning, nil
	case st == service.StatusStopped:
		return StateStopped, nil
	}
	return "", fmt.Errorf("service status: unknown state %d", st)
}

// foreground is the service.Interface kardianos requires. Its methods only
// run under kardianos's own Run loop, which hedge never uses: under systemd
// hedge runs `hedge run` in the foreground (Type=notify) and handles
// SIGTERM itself.
type foreground struct{}

var errForeground = errors.New("hedge runs in the foreground under systemd; use `hedge run`")

func (foreground) Start(service.Service) error { return errForeground }
func (foreground) Stop(service.Service) error  { return errForeground }

var _ service.Interface = foreground{}
