package main

import (
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/models/llm"
)

// TestRenderLLMConversation: the conversation part of the LLM section
// shows both ways and holds turn N ÷ turn 1, rounded up, to its target; a
// run without the file has no such part.
func TestRenderLLMConversation(t *testing.T) {
	dir := t.TempDir()
	rc := &reportCtx{dir: dir}
	if s, err := renderLLMConversation(rc); err != nil || s != "" || len(rc.heads) != 0 {
		t.Fatalf("no file: %q, %v", s, err)
	}
	c := llm.BenchConversation{Model: "/x/tiny.gguf", Threads: 2, Template: "zephyr", Turns: 6, AnswerTokens: 240, Runs: 3,
		Reuse: llm.BenchTTFT{FirstMS: 1000, LastMS: 1300.4, FirstPromptTokens: 130, LastPromptTokens: 1500, LastReusedTokens: 1400},
		Whole: llm.BenchTTFT{FirstMS: 1000, LastMS: 12000, FirstPromptTokens: 130, LastPromptTokens: 1500}}
	writeJSON(t, dir, "llm-conversation.json", c)
	s, err := renderLLMConversation(rc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"turn 1 vs turn 6", "`tiny.gguf`", "| reused between turns | 1000 ms | 1300 ms | 1.301× | 130 | 1500 (1400) | 3 |", "| every prompt whole | 1000 ms | 12000 ms | 12.000× |"} {
		if !strings.Contains(s, want) {
			t.Errorf("section lacks %q:\n%s", want, s)
		}
	}
	if len(rc.heads) != 1 || rc.heads[0].Met || rc.heads[0].Target != "≤ 1.3×" || !strings.HasPrefix(rc.heads[0].Value, "1.301×") {
		t.Fatalf("headline %+v: 1.3004 is over 1.3", rc.heads)
	}
}
