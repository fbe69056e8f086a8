package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/platform"
	"github.com/hedge-edge/hedge/systemd"
)

// defaultConfigText is what `hedge install` writes when the config file is
// absent: every setting has a default, so version is all it needs. Paths
// come from systemd (StateDirectory=, RuntimeDirectory=).
const defaultConfigText = `# hedge configuration; "hedge config check FILE" validates it.
# Every key has a default (see the README's config reference).
# Secrets (API keys, broker passwords) go in /etc/hedge/hedge.env as
# HEDGE_* variables, mode 0600, not in this world-readable file.
version: 1
`

// installPlan is everything `hedge install` would write or start.
type installPlan struct {
	Binary       string
	Config       string
	ConfigExists bool
	UnitPath     string
	Unit         []byte
}

func cmdInstall(args []string) int { return install(args, os.Stdout, os.Stderr) }

func install(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", systemd.DefaultConfig, "config file the service reads (written with defaults when absent)")
	binary := fs.String("binary", "", "hedge executable the service starts (default: this executable)")
	dryRun := fs.Bool("dry-run", false, "print the unit and every path install would write; touch nothing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hedge install: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	plan, err := planInstall(*binary, *cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "hedge install: %v\n", err)
		return 1
	}
	if *dryRun {
		printPlan(stdout, plan)
		return 0
	}
	if err := applyInstall(plan, stdout); err != nil {
		fmt.Fprintf(stderr, "hedge install: %v\n", err)
		return 1
	}
	return 0
}

// planInstall resolves the paths and renders the unit; it touches nothing.
func planInstall(binary, cfgPath string) (installPlan, error) {
	if binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return installPlan{}, fmt.Errorf("find this executable: %w; pass --binary", err)
		}
		binary = exe
	}
	binary, err := filepath.Abs(binary)
	if err != nil {
		return installPlan{}, fmt.Errorf("binary %s: %w", binary, err)
	}
	// The unit must name the real file: a symlink in a hidden tree would
	// be invisible to the sandboxed service.
	if r, err := filepath.EvalSymlinks(binary); err == nil {
		binary = r
	}
	if cfgPath, err = filepath.Abs(cfgPath); err != nil {
		return installPlan{}, fmt.Errorf("config %s: %w", cfgPath, err)
	}
	unit, err := systemd.Unit(systemd.Options{Binary: binary, Config: cfgPath})
	if err != nil {
		return installPlan{}, err
	}
	_, statErr := os.Stat(cfgPath)
	return installPlan{
		Binary:       binary,
		Config:       cfgPath,
		ConfigExists: statErr == nil,
		UnitPath:     systemd.DefaultUnitPath,
		Unit:         unit,
	}, nil
}

func printPlan(w io.Writer, p installPlan) {
	fmt.Fprintln(w, "# hedge install --dry-run: nothing is written or started.")
	fmt.Fprintf(w, "unit file:   %s (would be written, then: systemctl enable %s.service; systemctl daemon-reload)\n", p.UnitPath, systemd.Name)
	if p.ConfigExists {
		fmt.Fprintf(w, "config file: %s (exists; kept as is)\n", p.Config)
	} else {
		fmt.Fprintf(w, "config file: %s (absent; would be written with the defaults below, mode 0644)\n", p.Config)
	}
	note := ""
	if _, err := os.Stat(p.Binary); err != nil {
		note = " (missing: install would fail)"
	}
	fmt.Fprintf(w, "binary:      %s%s (not copied; the unit runs it in place)\n", p.Binary, note)
	fmt.Fprintln(w, "env file:    /etc/hedge/hedge.env (optional, read by systemd; not written)")
	fmt.Fprintln(w, "state dir:   /var/lib/hedge (created by systemd when the service starts)")
	fmt.Fprintln(w, "runtime dir: /run/hedge (created by systemd when the service starts)")
	if _, err := platform.NewService(platform.ServiceOptions{Name: systemd.Name}); errors.Is(err, platform.ErrNoSystemd) {
		fmt.Fprintf(w, "note:        %v: a real install would fail here\n", err)
	}
	fmt.Fprintf(w, "\n# ---- %s ----\n", p.UnitPath)
	w.Write(p.Unit)
	if !p.ConfigExists {
		fmt.Fprintf(w, "\n# ---- %s ----\n%s", p.Config, defaultConfigText)
	}
}

// applyInstall writes the default config when absent and installs the
// unit. On failure it removes the config it wrote, so a failed install
// leaves the system as it found it.
func applyInstall(p installPlan, stdout io.Writer) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("installing a system service needs root: sudo hedge install")
	}
	svc, err := platform.NewService(platform.ServiceOptions{
		Name:   systemd.Name,
		Unit:   p.Unit,
		Binary: p.Binary,
		Args:   []string{"run", "--config", p.Config},
	})
	if err != nil {
		return err
	}
	if err := checkExecutable(p.Binary); err != nil {
		return err
	}
	if _, err := os.Stat(p.UnitPath); err == nil {
		return fmt.Errorf("unit %s already exists: run hedge uninstall first", p.UnitPath)
	}
	wrote, err := ensureConfig(p.Config)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && wrote {
			_ = os.Remove(p.Config)
		}
	}()
	if err := svc.Install(); err != nil {
		return err
	}
	if wrote {
		fmt.Fprintf(stdout, "wrote %s\n", p.Config)
	}
	fmt.Fprintf(stdout, "installed %s (runs %s)\nstart it with: hedge start\n", p.UnitPath, p.Binary)
	return nil
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("binary: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("binary %s: not an executable file", path)
	}
	return nil
}

// ensureConfig writes the default config at path unless a file is there; an
// existing file must pass validation, so the service does not start into a
// config error. It reports whether it wrote the file.
func ensureConfig(path string) (bool, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if _, err := config.Parse(data); err != nil {
			return false, fmt.Errorf("existing config %s is invalid (fix it, or remove it to get the defaults):\n%w", path, err)
		}
		return false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("read config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("config dir: %w", err)
	}
	// O_EXCL: never overwrite a file that appeared meanwhile.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return false, fmt.Errorf("write config: %w", err)
	}
	if _, err := f.WriteString(defaultConfigText); err != nil {
		f.Close()
		os.Remove(path)
		return false, fmt.Errorf("write config: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("write config: %w", err)
	}
	return true, nil
}

func cmdUninstall(args []string) int {
	return control("uninstall", args, os.Stdout, os.Stderr, func(s *platform.Service, w io.Writer) error {
		if st, err := s.State(); err == nil && st == platform.StateRunning {
			if err := s.Stop(); err != nil {
				return err
			}
		}
		if err := s.Uninstall(); err != nil {
			return err
		}
		fmt.Fprintf(w, "uninstalled %s; kept %s, /etc/hedge and /var/lib/hedge\n", systemd.DefaultUnitPath, systemd.DefaultConfig)
		return nil
	})
}

func cmdStart(args []string) int {
	return control("start", args, os.Stdout, os.Stderr, func(s *platform.Service, w io.Writer) error {
		err := s.Start()
		var se *platform.StartError
		if errors.As(err, &se) && se.Status == systemd.ExitConfig {
			return fmt.Errorf("%w\nhedge cannot start with its configuration: fix it (hedge config check %s), then run hedge start again", err, systemd.DefaultConfig)
		}
		return err
	})
}

func cmdStop(args []string) int {
	return control("stop", args, os.Stdout, os.Stderr, func(s *platform.Service, w io.Writer) error {
		return s.Stop()
	})
}

// cmdStatus prints running, stopped, failed or not installed. Its exit code
// follows the LSB init-script convention that systemctl status uses too:
// 0 running, 3 not running (stopped or failed), 4 not installed, 1 when the
// state cannot be determined.
func cmdStatus(args []string) int { return status(args, os.Stdout, os.Stderr) }

func status(args []string, stdout, stderr io.Writer) int {
	code := 0
	rc := control("status", args, stdout, stderr, func(s *platform.Service, w io.Writer) error {
		st, err := s.State()
		if err != nil {
			return err
		}
		fmt.Fprintln(w, st)
		switch st {
		case platform.StateStopped, platform.StateFailed:
			code = 3
		case platform.StateNotInstalled:
			code = 4
		}
		return nil
	})
	if rc != 0 {
		return rc
	}
	return code
}

// control runs one action on the installed service; these commands take no
// arguments.
func control(name string, args []string, stdout, stderr io.Writer, do func(*platform.Service, io.Writer) error) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "usage: hedge %s (takes no arguments)\n", name)
		return 2
	}
	svc, err := platform.NewService(platform.ServiceOptions{Name: systemd.Name})
	if err == nil {
		err = do(svc, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "hedge %s: %v\n", name, err)
		return 1
	}
	return 0
}
