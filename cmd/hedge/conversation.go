package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/transport/local"
)

const conversationUsage = `usage: hedge conversation show|rm [--socket PATH] [--json] ID

Shows the turns of conversation ID, or forgets it, through the running
hedge's socket. A conversation belongs to whoever holds it: over the socket
that is your uid, so these read and delete only your own.
`

// conversationCmd runs `hedge conversation` and returns the exit status.
func conversationCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "show" && args[0] != "rm") {
		fmt.Fprint(stderr, conversationUsage)
		return 2
	}
	op := map[string]string{"show": agent.OpConversationShow, "rm": agent.OpConversationRm}[args[0]]
	fs := flag.NewFlagSet("conversation "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, conversationUsage); fs.PrintDefaults() }
	socket := fs.String("socket", "", "hedge's socket (default "+config.DefaultSocket()+", or $HEDGE_SOCKET)")
	asJSON := fs.Bool("json", false, "print the whole reply as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "hedge conversation: give one conversation ID")
		return 2
	}
	path := *socket
	if path == "" {
		path = config.DefaultSocket()
	}
	q := agent.Query{ID: fmt.Sprintf("conv-%d", os.Getpid()), Op: op, Conversation: fs.Arg(0)}
	a, err := local.Ask(ctx, path, q, nil)
	if err != nil {
		fmt.Fprintf(stderr, "hedge conversation: %v\n", err)
		return 1
	}
	if a.Error != nil {
		fmt.Fprintf(stderr, "hedge conversation: %s: %s\n", a.Error.Code, a.Error.Message)
		return 1
	}
	printConversation(stdout, a, *asJSON)
	return 0
}

// printConversation writes a show or rm reply: JSON, or a turn a paragraph.
func printConversation(w io.Writer, a agent.Answer, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(a)
		return
	}
	if a.Turns == nil {
		fmt.Fprintln(w, a.Answer)
		return
	}
	for i, t := range a.Turns {
		fmt.Fprintf(w, "%d. %s (%s)\n   > %s\n   < %s\n", i+1, t.At.Format("2006-01-02 15:04:05Z"), t.Tier, t.User, t.Answer)
	}
}
