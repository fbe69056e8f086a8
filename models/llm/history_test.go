package llm

import (
	"context"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent"
)

// TestHistoryThroughTheTemplate: earlier turns reach the model through the
// chat template as user and assistant messages, after the system prompt;
// an earlier answer that spells </s> is plain text, like the question.
func TestHistoryThroughTheTemplate(t *testing.T) {
	g := newStories(t, Options{SystemPrompt: "Be brief.", ChatTemplate: "chatml"})
	g.mu.Lock()
	m, tmpl := g.m, g.tmpl
	g.mu.Unlock()
	turns := []agent.Turn{{User: "turn on the kitchen light", Answer: "Kitchen light on."}, {User: "and the hall?", Answer: "Hall</s> light on."}}
	p, templated := buildPrompt(tmpl, chat{system: "Be brief.", turns: turns, text: "what did I just ask you?"})
	want := []string{"<|im_start|>system\nBe brief.", "<|im_start|>user\nturn on the kitchen light", "<|im_start|>assistant\nKitchen light on.",
		"<|im_start|>user\nand the hall?", "<|im_start|>assistant\nHall</s> light on.", "<|im_start|>user\nwhat did I just ask you?", "<|im_start|>assistant\n"}
	at := 0
	for _, w := range want {
		i := strings.Index(p[at:], w)
		if !templated || i < 0 {
			t.Fatalf("prompt %q lacks %q in order", p, w)
		}
		at += i + len(w)
	}
	toks, err := promptTokens(m, tmpl, chat{system: "Be brief.", turns: turns, text: "what did I just ask you?"})
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := m.tokenize("</s>", false, true)
	for _, tok := range toks {
		if tok == eos[0] {
			t.Fatalf("the earlier answer's </s> became an EOS token: %v", toks)
		}
	}
	ans, err := g.Generate(context.Background(), agent.Query{Text: "what did I just ask you?", History: turns, MaxTokens: 8}, nil)
	if err != nil || ans.HistoryTruncated {
		t.Fatalf("Generate with history: %+v, %v", ans, err)
	}
}

// TestHistoryDroppedToFit: a history longer than the context leaves out
// its oldest turns, keeps the system prompt and the question, and says so.
func TestHistoryDroppedToFit(t *testing.T) {
	g := newStories(t, Options{SystemPrompt: "Be brief.", ChatTemplate: "chatml", ContextSize: 256})
	var turns []agent.Turn
	for range 12 {
		turns = append(turns, agent.Turn{User: "tell me about the little girl and her dog in the park", Answer: "Once upon a time there was a little girl named Lily who had a dog."})
	}
	ans, err := g.Generate(context.Background(), agent.Query{Text: "and then?", History: turns, MaxTokens: 16}, nil)
	if err != nil {
		t.Fatalf("a long conversation failed instead of dropping its oldest turns: %v", err)
	}
	if !ans.HistoryTruncated {
		t.Fatalf("history of %d turns fit a 256-token context? %+v", len(turns), ans)
	}
	g.mu.Lock()
	m, tmpl := g.m, g.tmpl
	g.mu.Unlock()
	toks, dropped, err := fitPrompt(m, tmpl, chat{system: "Be brief.", turns: turns, text: "and then?"}, 16, 256)
	if err != nil || !dropped || len(toks)+16 > 256 {
		t.Fatalf("fitPrompt: %d tokens, dropped %v, %v", len(toks), dropped, err)
	}
	// A short history fits whole.
	if _, dropped, _ := fitPrompt(m, tmpl, chat{system: "Be brief.", turns: turns[:1], text: "and then?"}, 16, 256); dropped {
		t.Fatal("one turn was dropped from a 256-token context")
	}
}
