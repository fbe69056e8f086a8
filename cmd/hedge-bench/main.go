// Command hedge-bench is benchmark tooling that is never linked into the
// edge binary:
//
//	hedge-bench profile [flags]   where a running hedge's CPU goes per request
//
// scripts/bench-mqtt.sh runs it for `make bench`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: hedge-bench profile [flags]   (hedge-bench profile -h lists them)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch args[0] {
	case "profile":
		return profileCmd(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "hedge-bench: unknown command %q; usage: hedge-bench profile [flags]\n", args[0])
	return 2
}
