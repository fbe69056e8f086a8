package config

import "testing"

// TestLLMKVCache: KV reuse is on by default with 64 MiB for saved states;
// kv_cache_mb takes 0 (none saved) and refuses a negative size.
func TestLLMKVCache(t *testing.T) {
	c, err := Parse([]byte("version: 1\n"))
	if err != nil || !c.LLM.KVReuse || c.LLM.KVCacheMB != 64 {
		t.Fatalf("defaults: kv_reuse %v, kv_cache_mb %d (%v)", c.LLM.KVReuse, c.LLM.KVCacheMB, err)
	}
	checkSnippets(t, "no-secret-here", []snippet{
		{"llm:\n  kv_reuse: false\n  kv_cache_mb: 0\n", ""},
		{"llm:\n  kv_cache_mb: -1\n", "llm.kv_cache_mb"},
	})
}
