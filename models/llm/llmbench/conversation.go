package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/llm"
)

// convQuestions are the user's turns of the benchmark's conversation.
var convQuestions = []string{
	"I am planning a small vegetable garden behind the house this spring. The bed gets about six hours of sun. What should I plant first, and how far apart?",
	"The soil is heavy clay and stays wet for days after rain. How do I improve it before planting, and is it worth building raised beds instead?",
	"If I build raised beds, how deep should they be for tomatoes and carrots, and what mix of soil and compost should I fill them with?",
	"Slugs ate most of my lettuce last year. What can I do about them without using poison, since the neighbours' cat walks through the garden?",
	"How often should I water the beds in July when it is hot and dry, and is it better to water in the morning or in the evening?",
	"Thank you. Can you sum up everything we discussed as a short plan for the season, month by month, from March to September?",
}

// convOptions are the benchmark's flags.
type convOptions struct {
	model, template, jsonOut string
	threads, turns, answer   int
	runs                     int
}

// conversation measures the time to first token of turn 1 and of the last
// turn of a conversation, answered the way the agent does (each answer
// becomes a turn of the next question's history), with the KV cache reused
// between turns and with every prompt evaluated whole, and writes a
// llm.BenchConversation.
func conversation(o convOptions) error {
	if o.turns < 2 || o.turns > len(convQuestions) {
		return fmt.Errorf("-turns %d: must be between 2 and %d", o.turns, len(convQuestions))
	}
	res := llm.BenchConversation{Model: o.model, Threads: o.threads, Template: o.template, Turns: o.turns,
		AnswerTokens: o.answer, Runs: o.runs, LoadBefore: loadAvg()}
	var last llm.Stats
	open := func(noReuse bool) (*llm.Generator, error) {
		return llm.New(context.Background(), llm.Options{
			Path: o.model, Threads: o.threads, Temperature: 0, ContextSize: 2048, MaxTokens: o.answer,
			ChatTemplate: o.template, SystemPrompt: "You are hedge, a helpful assistant on a small device. Answer briefly and plainly.",
			// One conversation at a time: no state is saved or restored.
			NoKVReuse: noReuse, KVCacheBytes: -1,
			Log: slog.New(slog.DiscardHandler), OnStats: func(s llm.Stats) { last = s },
		})
	}
	reuse, err := open(false)
	if err != nil {
		return err
	}
	defer reuse.Close()
	whole, err := open(true)
	if err != nil {
		return err
	}
	defer whole.Close()
	ask := func(g *llm.Generator, conv string, hist []agent.Turn, text string) (string, llm.Stats, error) {
		ans, err := g.Generate(context.Background(), agent.Query{Text: text, History: hist, Conversation: conv}, nil)
		return ans.Answer, last, err
	}
	// Warm-up: page faults, first-touch allocations.
	for _, g := range []*llm.Generator{reuse, whole} {
		if _, _, err := ask(g, "warm-up", nil, "Hello."); err != nil {
			return err
		}
	}
	for run := range o.runs {
		// Each run is a new conversation: the last run's state is never
		// the cache of this one's first turn.
		conv := fmt.Sprintf("run-%d", run)
		var hist []agent.Turn
		var st llm.Stats
		for i, q := range convQuestions[:o.turns] {
			var ans string
			if ans, st, err = ask(reuse, conv, hist, q); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "llmbench: run %d turn %d: %d prompt tokens, %d reused, first token after %.0f ms, %d generated\n",
				run+1, i+1, st.PromptTokens, st.ReusedTokens, float64(st.FirstToken.Microseconds())/1000, st.Tokens)
			if i == 0 {
				addTTFT(&res.Reuse, st, true)
			}
			hist = append(hist, agent.Turn{User: q, Answer: ans})
		}
		addTTFT(&res.Reuse, st, false)
		// The same first and last prompt, evaluated whole.
		if _, st, err = ask(whole, conv, nil, convQuestions[0]); err != nil {
			return err
		}
		addTTFT(&res.Whole, st, true)
		if _, st, err = ask(whole, conv, hist[:o.turns-1], convQuestions[o.turns-1]); err != nil {
			return err
		}
		addTTFT(&res.Whole, st, false)
		fmt.Fprintf(os.Stderr, "llmbench: conversation run %d/%d: turn 1 %.0f ms, turn %d %.0f ms reused (%d of %d tokens), %.0f ms whole\n",
			run+1, o.runs, res.Reuse.FirstRunsMS[run], o.turns, res.Reuse.LastRunsMS[run], res.Reuse.LastReusedTokens, res.Reuse.LastPromptTokens, res.Whole.LastRunsMS[run])
	}
	res.LoadAfter = loadAvg()
	for _, t := range []*llm.BenchTTFT{&res.Reuse, &res.Whole} {
		t.FirstMS, t.LastMS = median(slices.Clone(t.FirstRunsMS)), median(slices.Clone(t.LastRunsMS))
	}
	fmt.Print(llm.ConversationTable(res))
	b, _ := json.MarshalIndent(res, "", "  ")
	if o.jsonOut == "" {
		return nil
	}
	return os.WriteFile(o.jsonOut, append(b, '\n'), 0o644)
}

// addTTFT records one turn's figures: the first turn's or the last's.
func addTTFT(t *llm.BenchTTFT, st llm.Stats, first bool) {
	ms := float64(st.FirstToken.Microseconds()) / 1000
	if first {
		t.FirstRunsMS = append(t.FirstRunsMS, ms)
		t.FirstPromptTokens = st.PromptTokens
		return
	}
	t.LastRunsMS = append(t.LastRunsMS, ms)
	t.LastPromptTokens, t.LastReusedTokens = st.PromptTokens, st.ReusedTokens
}

// loadAvg is /proc/loadavg's three load averages, "" when unreadable.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
