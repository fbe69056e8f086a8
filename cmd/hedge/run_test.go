package main

import (
	"testing"

	"github.com/hedge-edge/hedge/agent/config"
)

// TestLengthVersionNamesTheBounds: a change of llm.max_tokens or
// cloud.max_tokens changes the cache version, so an answer cut at the old
// bound is not served to a query that sets no max_tokens.
func TestLengthVersionNamesTheBounds(t *testing.T) {
	base := config.Default()
	llm, cloud := base, base
	llm.LLM.MaxTokens++
	cloud.Cloud.MaxTokens++
	seen := map[string]bool{}
	for _, c := range []config.Config{base, llm, cloud} {
		seen[lengthVersion(c)] = true
	}
	if len(seen) != 3 {
		t.Fatalf("length versions %v: a bound's change must change it", seen)
	}
}
