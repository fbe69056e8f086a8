package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeanDependencies fails when the edge binary links benchmark
// tooling: plots (gonum.org/v1/plot), LaTeX (go-latex) or any font
// package. They belong in cmd/hedge-bench; on a Pi they are megabytes that
// never run.
func TestLeanDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 50 || !strings.Contains(string(out), "github.com/hedge-edge/hedge/agent\n") {
		t.Fatalf("go list -deps listed %d packages, not hedge's graph:\n%s", len(pkgs), out)
	}
	for _, p := range pkgs {
		if benchOnly(p) {
			t.Errorf("cmd/hedge depends on %s: plotting and fonts are hedge-bench's", p)
		}
	}
}

// benchOnly reports whether the package at path is tooling the edge binary
// must not link.
func benchOnly(path string) bool {
	if strings.HasPrefix(path, "gonum.org/v1/plot") || strings.HasPrefix(path, "codeberg.org/go-latex/") {
		return true
	}
	for _, seg := range strings.Split(path, "/") {
		if strings.Contains(strings.ToLower(seg), "font") {
			return true
		}
	}
	return false
}

func TestBenchOnly(t *testing.T) {
	for p, want := range map[string]bool{
		"gonum.org/v1/plot":                      true,
		"gonum.org/v1/plot/vg/vgimg":             true,
		"codeberg.org/go-latex/latex/mtex":       true,
		"codeberg.org/go-fonts/liberation":       true,
		"golang.org/x/image/font/opentype":       true,
		"gonum.org/v1/gonum/mat":                 false,
		"github.com/hedge-edge/hedge/agent":      false,
		"github.com/eclipse/paho.mqtt.golang":    false,
		"github.com/hedge-edge/hedge/models/slm": false,
	} {
		if got := benchOnly(p); got != want {
			t.Errorf("benchOnly(%q) = %v, want %v", p, got, want)
		}
	}
}
