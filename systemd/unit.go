// Package systemd holds hedge's own systemd unit, embedded in the binary so
// that `hedge install` (and the .deb) install exactly the unit the tests
// verified.
package systemd

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/template"
)

//go:embed hedge.service
var unitText string

// Default paths of an installed hedge.
const (
	DefaultBinary   = "/usr/bin/hedge"
	DefaultConfig   = "/etc/hedge/config.yaml"
	DefaultUnitPath = "/etc/systemd/system/hedge.service"
	// Name is the unit's name without the .service suffix.
	Name = "hedge"
)

// ExitConfig is hedge run's exit status for a configuration it cannot start
// with (EX_CONFIG in sysexits.h). The unit names it in
// RestartPreventExitStatus=: a restart cannot fix a file, and five quick
// failures would hit StartLimitBurst= and refuse even the manual start
// after the fix.
const ExitConfig = 78

// Options are the paths rendered into the unit.
type Options struct {
	// Binary is the absolute path of the hedge executable (DefaultBinary
	// when empty).
	Binary string
	// Config is the absolute path of the config file hedge run reads
	// (DefaultConfig when empty).
	Config string
}

// ExitConfig is ExitConfig, for the unit's template.
func (Options) ExitConfig() int { return ExitConfig }

// ErrBadPath is returned by Unit for a path the unit cannot use; the error
// wrapping it says which path and why.
var ErrBadPath = errors.New("path unusable in the unit")

// hiddenPrefixes are the trees the unit's sandbox hides from hedge
// (ProtectHome=yes, PrivateTmp=yes): a binary or config there would be
// invisible to the service.
var hiddenPrefixes = []string{"/home", "/root", "/run/user", "/tmp", "/var/tmp"}

// Unit renders hedge.service with o's paths.
func Unit(o Options) ([]byte, error) {
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
	if o.Config == "" {
		o.Config = DefaultConfig
	}
	if err := checkPath("binary", o.Binary); err != nil {
		return nil, err
	}
	if err := checkPath("config", o.Config); err != nil {
		return nil, err
	}
	t, err := template.New("hedge.service").Option("missingkey=error").Parse(unitText)
	if err != nil {
		return nil, fmt.Errorf("parse embedded unit: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, o); err != nil {
		return nil, fmt.Errorf("render unit: %w", err)
	}
	return b.Bytes(), nil
}

// checkPath refuses paths that systemd would split, expand or not see:
// ExecStart= splits on whitespace and expands % specifiers and $VARS, and
// kardianos/service renders the unit through its own {{ }} template engine.
func checkPath(what, p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%s %q: %w: must be absolute", what, p, ErrBadPath)
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("%s %q: %w: must be clean (no //, . or ..)", what, p, ErrBadPath)
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`"'\%$;{}`, r) {
			return fmt.Errorf("%s %q: %w: contains %q, which systemd would split or expand", what, p, ErrBadPath, r)
		}
	}
	for _, h := range hiddenPrefixes {
		if p == h || strings.HasPrefix(p, h+"/") {
			return fmt.Errorf("%s %q: %w: the service's sandbox hides %s (ProtectHome/PrivateTmp); put it under /usr, /opt or /etc", what, p, ErrBadPath, h)
		}
	}
	return nil
}
