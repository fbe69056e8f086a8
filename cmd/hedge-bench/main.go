// Command hedge-bench is benchmark, report and plot tooling that is never
// linked into the edge binary:
//
//	hedge-bench mqtt [flags]      load-test a running hedge over MQTT
//	hedge-bench tiers [flags]     start a hedge with every tier on and time each tier over the socket
//	hedge-bench edge [flags]      the edge figures: binary size, idle RSS, cold start, training's peak RSS
//	hedge-bench eval [flags]      hedge eval beside a fastText baseline, with its plot
//	hedge-bench profile [flags]   where a running hedge's CPU goes per request
//	hedge-bench report [flags]    write BENCHMARKS.md from the JSON results in bin/bench
//
// `make bench` (scripts/bench.sh and scripts/bench-*.sh) runs them;
// `hedge-bench COMMAND -h` lists a command's flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// commands is the table of subcommands; nothing registers itself.
func commands() map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
		"mqtt":    benchMQTT,
		"tiers":   benchTiers,
		"edge":    benchEdge,
		"eval":    evalCmd,
		"profile": profileCmd,
		"report":  benchReport,
	}
}

const usage = "usage: hedge-bench mqtt|tiers|edge|eval|profile|report [flags]   (hedge-bench COMMAND -h lists them)"

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	run, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "hedge-bench: unknown command %q; %s\n", args[0], usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return run(ctx, args[1:], stdout, stderr)
}

// besideSelf is the path of name in hedge-bench's own folder: make build
// puts bin/hedge beside bin/hedge-bench.
func besideSelf(name string) string {
	self, err := os.Executable()
	if err != nil {
		return name
	}
	return filepath.Join(filepath.Dir(self), name)
}
