package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hedge-edge/hedge/models/llm"
)

// llmTTFTTarget bounds the time to first token of a conversation's last
// turn over its first's, with the KV cache reused between turns (issue 15).
const llmTTFTTarget = 1.3

// renderLLMConversation is the LLM section's part from llmbench -turns
// (llm-conversation.json): the time to first token of a conversation's
// first and last turn, reused and whole. A run without the file (an
// older one) has no such part.
func renderLLMConversation(rc *reportCtx) (string, error) {
	var c llm.BenchConversation
	if err := rc.readJSON("llm-conversation.json", &c); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	if c.Runs == 0 || c.Reuse.FirstMS <= 0 || c.Whole.FirstMS <= 0 {
		return "", errors.New("llm-conversation.json holds no runs")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n### Conversation: time to first token, turn 1 vs turn %d\n\n", c.Turns)
	fmt.Fprintf(&b, "`llmbench -turns %d` on `%s`, %d threads, template `%s`: a %d-turn conversation answered as the agent does (each\n"+
		"answer, at most %d tokens, greedy, becomes a turn of the next question's history); the time from the request's turn on\n"+
		"the model to its first token, of turn 1 and of turn %d. Reused: the KV cache keeps the conversation's evaluated tokens\n"+
		"between turns (`llm.kv_reuse`); whole: the same two prompts, each evaluated whole. Medians of %d conversations;\n"+
		"load average %s before, %s after.\n\n",
		c.Turns, baseName(c.Model), c.Threads, c.Template, c.Turns, c.AnswerTokens, c.Turns, c.Runs, orUnknown(c.LoadBefore), orUnknown(c.LoadAfter))
	b.WriteString(llm.ConversationTable(c))
	r := c.Reuse.Ratio()
	rc.head(headline{Figure: fmt.Sprintf("LLM time to first token, turn %d ÷ turn 1 (%d-token prompt, KV cache reused)", c.Turns, c.Reuse.LastPromptTokens),
		Value:  fmt.Sprintf("%s (%.0f ms vs %.0f ms; whole: %s)", llm.RatioUp(r), c.Reuse.LastMS, c.Reuse.FirstMS, llm.RatioUp(c.Whole.Ratio())),
		Target: fmt.Sprintf("≤ %.1f×", llmTTFTTarget), Met: r <= llmTTFTTarget})
	return b.String(), nil
}

func baseName(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }
