package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"strings"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/transport/local"
)

const askUsage = `usage: hedge ask [--socket PATH] [--prefer auto|local|cloud] [--json] [--stream] [--timeout D] TEXT...

Sends TEXT to the hedge listening on the socket and prints the answer.
Exit status: 0 answered, 1 error reply or hedge unreachable, 2 usage error.

`

// ask runs `hedge ask` with its arguments and returns the exit status.
func ask(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ask", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, askUsage)
		fs.PrintDefaults()
	}
	socket := fs.String("socket", "", "hedge's socket (default $HEDGE_SOCKET, else your own hedge run's "+config.DefaultSocket()+" when it exists, else the service's "+config.ServiceSocket+")")
	prefer := fs.String("prefer", "auto", "where the answer should come from: auto, local or cloud")
	asJSON := fs.Bool("json", false, "print the whole reply as JSON (with --stream: every chunk line too)")
	stream := fs.Bool("stream", false, "print the answer as it is produced")
	conv := fs.String("conversation", "", "continue conversation ID: hedge keeps its turns (yours only: it is scoped to your uid)")
	timeout := fs.Duration("timeout", 0, "give up after this long, e.g. 30s (default: wait for hedge, which bounds each request by limits.request_timeout)")

	// Flags may come before or after the words of TEXT; "--" ends them.
	var words []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		consumed := len(rest) - fs.NArg()
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed > 0 && args[len(args)-len(rest)-1] == "--" {
			words = append(words, rest...)
			break
		}
		words = append(words, rest[0])
		rest = rest[1:]
	}
	text := strings.Join(words, " ")
	if strings.TrimSpace(text) == "" {
		fmt.Fprintln(stderr, "hedge ask: missing TEXT, the question to ask")
		fs.Usage()
		return 2
	}
	p := agent.Prefer(*prefer)
	if p == "" || !p.Valid() {
		fmt.Fprintf(stderr, "hedge ask: --prefer %q: must be auto, local or cloud\n", *prefer)
		return 2
	}
	if *timeout < 0 {
		fmt.Fprintf(stderr, "hedge ask: --timeout %s: must not be negative\n", *timeout)
		return 2
	}
	path := *socket
	if path == "" {
		path = config.AskSocket()
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, *timeout, fmt.Errorf("no reply within %s", *timeout))
		defer cancel()
	}

	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	var onChunk func(agent.Chunk)
	streamed := false
	if *stream {
		onChunk = func(c agent.Chunk) {
			streamed = true
			if *asJSON {
				enc.Encode(c)
				return
			}
			io.WriteString(stdout, c.Delta)
		}
	}
	q := agent.Query{ID: fmt.Sprintf("ask-%d", os.Getpid()), Text: text, Prefer: p, Conversation: *conv}
	a, err := local.Ask(ctx, path, q, onChunk)
	if err != nil {
		if streamed && !*asJSON {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stderr, "hedge ask: %v\n", err)
		if errors.Is(err, local.ErrNotRunning) {
			fmt.Fprintf(stderr, "  start the service with `sudo hedge start` (its socket is %s), or your own with `hedge run` (or `make run`), or name a socket with --socket PATH or $HEDGE_SOCKET\n", config.ServiceSocket)
		}
		if errors.Is(err, iofs.ErrPermission) && path == config.ServiceSocket {
			fmt.Fprintln(stderr, "  the service's socket is for root and group hedge: sudo usermod -aG hedge $USER, then log in again")
		}
		return 1
	}
	switch {
	case *asJSON:
		enc.Encode(a)
	case a.Error != nil:
		if streamed {
			fmt.Fprintln(stdout)
		}
	case streamed:
		fmt.Fprintln(stdout)
	default:
		fmt.Fprintln(stdout, a.Answer)
	}
	if a.Error != nil {
		fmt.Fprintf(stderr, "hedge ask: %s: %s\n", a.Error.Code, a.Error.Message)
		return 1
	}
	return 0
}
