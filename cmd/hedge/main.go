// Command hedge is a hybrid edge AI agent: it answers questions from IoT
// devices (MQTT), local programs (Unix socket) and loopback HTTP from the
// cheapest tier that can answer well: cache, on-device intent model, local
// LLM, or the cloud with anonymized text.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/hedge-edge/hedge/agent/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// command is one subcommand: its one-line help and its entry point, which
// returns the process exit code.
type command struct {
	help string
	run  func(args []string) int
}

// commands is the table of subcommands. Wiring is explicit: every command
// is listed here, nothing registers itself.
func commands() map[string]command {
	return map[string]command{
		"run":          {"run the agent in the foreground: hedge run [--config FILE]", profiled(cmdRun)},
		"ask":          {"ask a running hedge over its socket: hedge ask [--socket PATH] [--prefer auto|local|cloud] [--conversation ID] [--json] TEXT", interruptible(ask)},
		"conversation": {"show or forget one of your conversations: hedge conversation show|rm [--socket PATH] [--json] ID", interruptible(conversationCmd)},
		"config":       {"check a config file or print the defaults: hedge config check FILE | hedge config defaults", cmdConfig},
		"install":      {"install hedge as a systemd service: hedge install [--config FILE] [--dry-run]", cmdInstall},
		"uninstall":    {"remove the installed service", cmdUninstall},
		"start":        {"start the installed service", cmdStart},
		"stop":         {"stop the installed service", cmdStop},
		"status":       {"print the service's state", cmdStatus},
		"version":      {"print hedge's version", cmdVersion},
		"doctor":       {"check this machine for hedge: hedge doctor [--config FILE]", cmdDoctor},
		"train":        {"train the intent model: hedge train --intents FILE --out DIR [--seed N]", interruptible(train)},
		"eval":         {"evaluate the intent model: hedge eval --data FILE --format clinc150 [--encoder compact|transformer] [--json]", interruptible(eval)},
		"models":       {"manage model files: hedge models pull|list|verify|rm", interruptible(modelsCmd)},
	}
}

// interruptible adapts a command that takes a context and its output
// streams: the context ends on SIGTERM or SIGINT, so the command can stop
// cleanly (a download keeps its partial file, training stops between
// batches).
func interruptible(f func(ctx context.Context, args []string, stdout, stderr io.Writer) int) func(args []string) int {
	return func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return f(ctx, args, os.Stdout, os.Stderr)
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "hedge: unknown command %q\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(args[1:])
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: hedge COMMAND [ARGS]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].help)
	}
}

func cmdVersion(args []string) int {
	fmt.Println("hedge " + version)
	return 0
}

func cmdConfig(args []string) int {
	switch {
	case len(args) == 2 && args[0] == "check":
		return configCheck(args[1], os.Stdout)
	case len(args) == 1 && args[0] == "defaults":
		return configDefaults(os.Stdout)
	}
	fmt.Fprintln(os.Stderr, "usage: hedge config check FILE | hedge config defaults")
	return 2
}

// configDefaults prints the built-in configuration as YAML: every key with
// its default, a starting point for a config file. Secrets are not part of
// it: they come from the environment or 0600 files.
func configDefaults(w io.Writer) int {
	out, err := yaml.Marshal(config.Default())
	if err != nil {
		fmt.Fprintf(os.Stderr, "hedge: %v\n", err)
		return 1
	}
	w.Write(out)
	return 0
}

func configCheck(path string, w io.Writer) int {
	if _, err := loadConfig(path); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(w, line)
		}
		return 1
	}
	fmt.Fprintln(w, "ok")
	return 0
}
