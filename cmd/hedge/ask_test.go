package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/local"
)

// wordsLLM is a fake local LLM answering "you said: TEXT" word by word.
type wordsLLM struct{}

func (wordsLLM) Generate(ctx context.Context, q agent.Query, emit func(string)) (agent.Answer, error) {
	words := append([]string{"you", "said:"}, strings.Fields(q.Text)...)
	for i, w := range words {
		if emit != nil {
			if i > 0 {
				w = " " + w
			}
			emit(w)
		}
	}
	return agent.Answer{Answer: strings.Join(words, " "), Model: "words"}, nil
}

// askSocket serves a real agent (fake LLM tier) on a real socket.
func askSocket(t *testing.T, llm agent.Generator) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "ha")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "hedge.sock")
	srv, err := local.Listen(path, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(agent.Options{LLM: llm})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, srv) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return path
}

func runAsk(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = ask(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestAsk(t *testing.T) {
	withLLM := askSocket(t, wordsLLM{})
	noTier := askSocket(t, nil)
	missing := filepath.Join(filepath.Dir(withLLM), "missing.sock")

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // exact, unless json
		stderr string // substring
		json   bool
	}{
		{name: "answer", args: []string{"--socket", withLLM, "hello", "there"}, stdout: "you said: hello there\n"},
		{name: "flags after text", args: []string{"hello", "--socket", withLLM, "--prefer", "local"}, stdout: "you said: hello\n"},
		{name: "double dash", args: []string{"--socket", withLLM, "--", "--json", "is", "text"}, stdout: "you said: --json is text\n"},
		{name: "stream", args: []string{"--socket", withLLM, "--stream", "a", "b"}, stdout: "you said: a b\n"},
		{name: "json", args: []string{"--socket", withLLM, "--json", "hi"}, json: true},
		{name: "no tier is exit 1", args: []string{"--socket", noTier, "hi"}, code: 1, stderr: "no_tier: no tier can answer"},
		{name: "no tier json", args: []string{"--socket", noTier, "--json", "hi"}, code: 1, stderr: "no_tier", json: true},
		{name: "missing socket", args: []string{"--socket", missing, "hi"}, code: 1, stderr: "no such socket: hedge is not running"},
		{name: "no text", args: []string{"--socket", withLLM}, code: 2, stderr: "missing TEXT"},
		{name: "blank text", args: []string{"--socket", withLLM, " "}, code: 2, stderr: "missing TEXT"},
		{name: "bad prefer", args: []string{"--socket", withLLM, "--prefer", "fast", "hi"}, code: 2, stderr: `--prefer "fast"`},
		{name: "unknown flag", args: []string{"--socket", withLLM, "--verbose", "hi"}, code: 2, stderr: "flag provided but not defined"},
		{name: "bad timeout", args: []string{"--timeout", "soon", "hi"}, code: 2, stderr: "invalid value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runAsk(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, out, errOut)
			}
			if !strings.Contains(errOut, tc.stderr) {
				t.Errorf("stderr %q does not contain %q", errOut, tc.stderr)
			}
			if tc.json {
				var a agent.Answer
				dec := json.NewDecoder(strings.NewReader(out))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&a); err != nil {
					t.Fatalf("stdout %q is not a reply: %v", out, err)
				}
				if (tc.code == 0) != (a.Error == nil) || a.ID == "" {
					t.Fatalf("reply %+v for exit %d", a, tc.code)
				}
				if tc.code == 0 && (a.Answer != "you said: hi" || a.Tier != agent.TierLLM) {
					t.Fatalf("reply %+v", a)
				}
				return
			}
			if out != tc.stdout {
				t.Errorf("stdout %q, want %q", out, tc.stdout)
			}
		})
	}
}

func TestAskStreamJSON(t *testing.T) {
	path := askSocket(t, wordsLLM{})
	code, out, errOut := runAsk("--socket", path, "--stream", "--json", "x", "y")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 { // you, said:, x, y, then the reply
		t.Fatalf("got %d lines: %q", len(lines), out)
	}
	for i, l := range lines[:4] {
		var c agent.Chunk
		if err := json.Unmarshal([]byte(l), &c); err != nil || c.Seq != i+1 {
			t.Fatalf("line %d %q: %+v %v", i, l, c, err)
		}
	}
	var a agent.Answer
	if err := json.Unmarshal([]byte(lines[4]), &a); err != nil || a.Answer != "you said: x y" {
		t.Fatalf("reply line %q: %v", lines[4], err)
	}
}
