// Command hedge-pkg builds hedge's .deb for one architecture:
//
//	hedge-pkg --arch arm64 --binary bin/hedge-linux-arm64 --library LIB --variants DIR [--version V] [--out dist]
//
// The version defaults to the git checkout's (packaging.DebVersion).
// scripts/deb.sh runs it for amd64 and arm64 (make deb).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/packaging"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("hedge-pkg", flag.ContinueOnError)
	arch := fs.String("arch", "", "Debian architecture: amd64 or arm64")
	binary := fs.String("binary", "", "hedge built for --arch")
	library := fs.String("library", "", "libonnxruntime.so.1 for --arch (scripts/fetch-ort.sh x64|arm64)")
	variantDir := fs.String("variants", "", "folder of llama.cpp's CPU variants for --arch, the build's libggml-cpu-*.so (HEDGE_LLAMA_DIR/lib of scripts/cgo-env.sh)")
	version := fs.String("version", "", "Debian version (default: from git describe)")
	out := fs.String("out", "dist", "folder for the package")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *arch == "" || *binary == "" || *library == "" || *variantDir == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: hedge-pkg --arch amd64|arm64 --binary FILE --library FILE --variants DIR [--version V] [--out DIR]")
		return 2
	}
	variants, err := filepath.Glob(filepath.Join(*variantDir, "libggml-cpu-*.so"))
	if err != nil || len(variants) == 0 {
		fmt.Fprintf(os.Stderr, "hedge-pkg: no libggml-cpu-*.so in %s\n", *variantDir)
		return 1
	}
	v := *version
	if v == "" {
		var err error
		if v, err = gitVersion(); err != nil {
			fmt.Fprintf(os.Stderr, "hedge-pkg: %v; pass --version\n", err)
			return 1
		}
	}
	path, err := packaging.Build(packaging.Options{Arch: *arch, Binary: *binary, Library: *library, Variants: variants, Version: v, OutDir: *out})
	if err != nil {
		fmt.Fprintf(os.Stderr, "hedge-pkg: %v\n", err)
		return 1
	}
	fmt.Println(path)
	return 0
}

// gitVersion is the checkout's Debian version; the commit date stamps
// untagged builds.
func gitVersion() (string, error) {
	describe, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		return "", fmt.Errorf("git describe: %w", err)
	}
	date, err := exec.Command("git", "log", "-1", "--format=%cI").Output()
	if err != nil {
		return "", fmt.Errorf("git log: %w", err)
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(date)))
	if err != nil {
		return "", fmt.Errorf("commit date %q: %w", date, err)
	}
	return packaging.DebVersion(string(describe), t)
}
