package llm

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/gguf"
)

// converse runs turns questions as one conversation on g, each answer
// becoming a turn of the next question's history, as the agent does; it
// returns the answers and each request's Stats.
func converse(t *testing.T, g *Generator, st *Stats, conv string, questions []string) ([]string, []Stats) {
	t.Helper()
	var hist []agent.Turn
	var answers []string
	var stats []Stats
	for _, q := range questions {
		ans, err := g.Generate(context.Background(), agent.Query{Text: q, History: hist, Conversation: conv, MaxTokens: 24}, nil)
		if err != nil {
			t.Fatalf("turn %d: %v", len(hist)+1, err)
		}
		hist = append(hist, agent.Turn{User: q, Answer: ans.Answer})
		answers = append(answers, ans.Answer)
		stats = append(stats, *st)
	}
	return answers, stats
}

// openChat opens the model at path with o, one thread, closed at the
// test's end.
func openChat(t *testing.T, path string, o Options) *Generator {
	t.Helper()
	o.Path, o.Threads, o.Log = path, 1, testLog(t)
	g, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

var kvQuestions = []string{
	"Tell me a story about a dog.",
	"What was the dog's name?",
	"And then what happened in the park?",
	"Did they find the ball?",
	"Who was sad?",
	"How did it end?",
}

// TestKVReuseGreedyEqual: a conversation's follow-up turns evaluate only
// their new tokens, and greedy answers are those of a generator that
// evaluates every prompt whole, with a chat template and without one.
func TestKVReuseGreedyEqual(t *testing.T) {
	for _, tmpl := range []string{"chatml", "none"} {
		t.Run(tmpl, func(t *testing.T) {
			var sr, sw Stats
			reuse := newStories(t, Options{SystemPrompt: "You tell stories.", ChatTemplate: tmpl, OnStats: func(s Stats) { sr = s }})
			whole := newStories(t, Options{SystemPrompt: "You tell stories.", ChatTemplate: tmpl, NoKVReuse: true, OnStats: func(s Stats) { sw = s }})
			got, rs := converse(t, reuse, &sr, "c", kvQuestions)
			want, ws := converse(t, whole, &sw, "c", kvQuestions)
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("turn %d: with reuse %q, without %q", i+1, got[i], want[i])
				}
				if ws[i].ReusedTokens != 0 {
					t.Errorf("turn %d: NoKVReuse reused %d tokens", i+1, ws[i].ReusedTokens)
				}
			}
			if rs[0].ReusedTokens != 0 {
				t.Errorf("turn 1 reused %d tokens of an empty cache", rs[0].ReusedTokens)
			}
			for i := 1; i < len(rs); i++ {
				// The earlier turns are a prefix of this prompt; at least
				// the last prompt's part of it is in the cache.
				if rs[i].ReusedTokens < rs[i-1].PromptTokens/2 || rs[i].ReusedTokens >= rs[i].PromptTokens {
					t.Errorf("turn %d: reused %d of %d prompt tokens (the last prompt had %d)", i+1, rs[i].ReusedTokens, rs[i].PromptTokens, rs[i-1].PromptTokens)
				}
			}
			for i, s := range rs {
				t.Logf("turn %d: %d prompt tokens, %d reused, %d generated", i+1, s.PromptTokens, s.ReusedTokens, s.Tokens)
			}
		})
	}
}

// TestKVReuseSameQuestionAgain: a prompt the cache holds whole evaluates
// its last token again (for the logits) and answers the same.
func TestKVReuseSameQuestionAgain(t *testing.T) {
	var st Stats
	g := newStories(t, Options{OnStats: func(s Stats) { st = s }})
	q := agent.Query{Text: "Once upon a time", MaxTokens: 16}
	first, err := g.Generate(context.Background(), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := st.PromptTokens
	again, err := g.Generate(context.Background(), q, nil)
	if err != nil || again.Answer != first.Answer {
		t.Fatalf("asked again: %q, %v; first %q", again.Answer, err, first.Answer)
	}
	if st.ReusedTokens != n-1 {
		t.Fatalf("reused %d of %d prompt tokens, want all but the last", st.ReusedTokens, n)
	}
}

// TestKVReuseKeyedByConversation: interleaved conversations each resume
// their own saved state, answer as if alone, and never start from
// another's, not even from the prefix (the system prompt) they share.
func TestKVReuseKeyedByConversation(t *testing.T) {
	for _, c := range []struct {
		name  string
		bytes int64
	}{{"saved", 0}, {"none saved", -1}} {
		t.Run(c.name, func(t *testing.T) {
			var st Stats
			g := newStories(t, Options{SystemPrompt: "You tell stories.", ChatTemplate: "chatml", KVCacheBytes: c.bytes, OnStats: func(s Stats) { st = s }})
			alone := newStories(t, Options{SystemPrompt: "You tell stories.", ChatTemplate: "chatml", NoKVReuse: true})
			hist := map[string][]agent.Turn{}
			for i, q := range kvQuestions {
				for _, conv := range []string{"a", "b", "c"} {
					text := fmt.Sprintf("%s (%s)", q, conv)
					req := agent.Query{Text: text, History: hist[conv], Conversation: conv, Caller: "uid 1000", Transport: "socket", MaxTokens: 16}
					ans, err := g.Generate(context.Background(), req, nil)
					if err != nil {
						t.Fatal(err)
					}
					want, err := alone.Generate(context.Background(), req, nil)
					if err != nil || ans.Answer != want.Answer {
						t.Fatalf("turn %d of %s: %q, alone %q (%v)", i+1, conv, ans.Answer, want.Answer, err)
					}
					switch {
					case i == 0 && st.ReusedTokens != 0:
						t.Fatalf("turn 1 of %s reused %d tokens of another conversation's state", conv, st.ReusedTokens)
					case i > 0 && c.bytes >= 0 && st.ReusedTokens == 0:
						t.Fatalf("turn %d of %s reused nothing of its saved state", i+1, conv)
					case c.bytes < 0 && st.ReusedTokens != 0:
						t.Fatalf("turn %d of %s reused %d tokens with no saved states", i+1, conv, st.ReusedTokens)
					}
					hist[conv] = append(hist[conv], agent.Turn{User: text, Answer: ans.Answer})
				}
			}
			if c.bytes >= 0 && (len(g.kv.saved) != 2 || g.kv.bytes > DefaultKVCacheBytes) {
				t.Fatalf("%d states saved in %d bytes, want the two not live", len(g.kv.saved), g.kv.bytes)
			}
		})
	}
}

// TestKVReuseOtherCaller: the same conversation id from another caller is
// another conversation: nothing of the first's state is reused.
func TestKVReuseOtherCaller(t *testing.T) {
	var st Stats
	g := newStories(t, Options{SystemPrompt: "You tell stories.", ChatTemplate: "chatml", OnStats: func(s Stats) { st = s }})
	q := agent.Query{Text: "Tell me a story.", Conversation: "kitchen", Caller: "uid 1000", Transport: "socket", MaxTokens: 8}
	if _, err := g.Generate(context.Background(), q, nil); err != nil {
		t.Fatal(err)
	}
	q.Caller = "uid 1001"
	if _, err := g.Generate(context.Background(), q, nil); err != nil || st.ReusedTokens != 0 {
		t.Fatalf("another caller's identical prompt reused %d tokens (%v)", st.ReusedTokens, err)
	}
	q.Caller = "uid 1000"
	if _, err := g.Generate(context.Background(), q, nil); err != nil || st.ReusedTokens != st.PromptTokens-1 {
		t.Fatalf("the first caller's prompt again reused %d of %d tokens (%v)", st.ReusedTokens, st.PromptTokens, err)
	}
}

// TestKVCacheBound: saved states never exceed KVCacheBytes; the least
// recently used go first, and a state larger than the bound is not kept.
func TestKVCacheBound(t *testing.T) {
	var st Stats
	g := newStories(t, Options{OnStats: func(s Stats) { st = s }, KVCacheBytes: 1})
	for _, conv := range []string{"a", "b", "a"} {
		if _, err := g.Generate(context.Background(), agent.Query{Text: "Once upon a time", Conversation: conv, MaxTokens: 8}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(g.kv.saved) != 0 || st.ReusedTokens != 0 {
		t.Fatalf("a 1-byte bound kept %d states, reused %d tokens", len(g.kv.saved), st.ReusedTokens)
	}
	// Measure one state, then allow two and a half.
	g.kv.limit = 1 << 30
	g.kv.stash(g.c)
	if len(g.kv.saved) != 1 {
		t.Fatal("no state saved")
	}
	one := g.kv.bytes
	g2 := newStories(t, Options{OnStats: func(s Stats) { st = s }, KVCacheBytes: 2*one + one/2})
	for _, conv := range []string{"a", "b", "c", "d"} {
		if _, err := g2.Generate(context.Background(), agent.Query{Text: "Once upon a time", Conversation: conv, MaxTokens: 8}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(g2.kv.saved) != 2 || g2.kv.bytes > 2*one+one/2 || g2.kv.saved[0].key != kvKey(agent.Query{Conversation: "b"}) {
		t.Fatalf("saved %d states (%d bytes, bound %d), oldest %q; want b and c", len(g2.kv.saved), g2.kv.bytes, 2*one+one/2, g2.kv.saved[0].key)
	}
	// b resumes (and d is saved in its place); a was dropped.
	for _, c := range []struct {
		conv   string
		reused bool
	}{{"b", true}, {"a", false}} {
		conv, reused := c.conv, c.reused
		if _, err := g2.Generate(context.Background(), agent.Query{Text: "Once upon a time", Conversation: conv, MaxTokens: 8}, nil); err != nil {
			t.Fatal(err)
		}
		if (st.ReusedTokens > 0) != reused {
			t.Errorf("conversation %s reused %d tokens, want reuse %v", conv, st.ReusedTokens, reused)
		}
	}
}

// TestKVReuseAfterCancel: a request canceled between tokens leaves the
// cache holding what it evaluated, and the next request reuses it; after a
// failed decode (the cache unknown) the next evaluates its prompt whole.
// Either way the answer is a fresh generator's.
func TestKVReuseAfterCancel(t *testing.T) {
	var st Stats
	g := newStories(t, Options{OnStats: func(s Stats) { st = s }})
	q := agent.Query{Text: "Once upon a time", MaxTokens: 16}
	want, err := g.Generate(context.Background(), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := g.Generate(ctx, agent.Query{Text: "The dog ran", MaxTokens: 16}, func(string) { cancel() }); err == nil {
		t.Fatal("a canceled request returned no error")
	}
	got, err := g.Generate(context.Background(), q, nil)
	if err != nil || got.Answer != want.Answer || st.ReusedTokens == 0 {
		t.Fatalf("after a cancel: %q (reused %d), %v; want %q", got.Answer, st.ReusedTokens, err, want.Answer)
	}
	g.kv.invalid()
	got, err = g.Generate(context.Background(), q, nil)
	if err != nil || got.Answer != want.Answer || st.ReusedTokens != 0 {
		t.Fatalf("after an invalid cache: %q (reused %d), %v; want %q", got.Answer, st.ReusedTokens, err, want.Answer)
	}
}

// TestKVReuseKeepsTheAnswersTokens: a model whose answers start with a
// space token (SentencePiece's "▁word", which the reply leaves out) still
// finds its last answer in the cache: the follow-up's history holds it as
// produced. Random weights answer with such tokens (and with sequences no
// tokenizer makes, byte tokens for letters, where the reuse ends).
func TestKVReuseKeepsTheAnswersTokens(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.gguf")
	s := gguf.Tiny
	s.Vocab = 4000
	if err := gguf.WriteLlama(p, s, gguf.F32, 5); err != nil {
		t.Fatal(err)
	}
	for _, tmpl := range []string{"chatml"} {
		t.Run(tmpl, func(t *testing.T) {
			var sr, sw Stats
			reuse := openChat(t, p, Options{ChatTemplate: tmpl, Temperature: 0, MaxTokens: 12, OnStats: func(x Stats) { sr = x }})
			whole := openChat(t, p, Options{ChatTemplate: tmpl, Temperature: 0, MaxTokens: 12, NoKVReuse: true, OnStats: func(x Stats) { sw = x }})
			got, rs := converse(t, reuse, &sr, "c", kvQuestions[:3])
			want, _ := converse(t, whole, &sw, "c", kvQuestions[:3])
			if !strings.HasPrefix(reuse.kv.answers[0].answers[0][1], " ") || strings.Contains(strings.Join(got, ""), "\uFFFD") {
				t.Fatalf("answers %q start without a space or hold invalid UTF-8: pick another seed", got)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("turn %d: with reuse %q, without %q", i+1, got[i], want[i])
				}
				if i > 0 && rs[i].ReusedTokens <= rs[i-1].PromptTokens {
					t.Errorf("turn %d reused %d tokens, none of the last answer (the last prompt held %d)", i+1, rs[i].ReusedTokens, rs[i-1].PromptTokens)
				}
			}
		})
	}
}

// TestAsProduced: only the key's own last reply, unchanged, gets back the
// leading whitespace the model produced.
func TestAsProduced(t *testing.T) {
	var kv kvCache
	kv.answered("a", "Sure.", " Sure.", false, spoken{})
	turns := []agent.Turn{{User: "q", Answer: "Sure."}}
	if got := kv.asProduced("a", turns); got[0].Answer != " Sure." || turns[0].Answer != "Sure." {
		t.Fatalf("own reply: %q (the caller's turns now %q)", got[0].Answer, turns[0].Answer)
	}
	for _, c := range []struct {
		key, answer string
	}{{"b", "Sure."}, {"a", "Sure!"}} {
		if got := kv.asProduced(c.key, []agent.Turn{{User: "q", Answer: c.answer}}); got[0].Answer != c.answer {
			t.Errorf("key %s, answer %q became %q", c.key, c.answer, got[0].Answer)
		}
	}
	kv.answered("a", "cut", " cut here STOP", true, spoken{})
	if got := kv.asProduced("a", []agent.Turn{{User: "q", Answer: "cut"}}); got[0].Answer != "cut" {
		t.Errorf("a reply cut by a stop string became %q", got[0].Answer)
	}
	// A byte that is no UTF-8 went out as U+FFFD; the model read the byte.
	kv.answered("a", "caf\uFFFD", " caf\xe9", false, spoken{})
	if got := kv.asProduced("a", []agent.Turn{{User: "q", Answer: "caf\uFFFD"}}); got[0].Answer != " caf\xe9" {
		t.Errorf("a reply made valid UTF-8 became %q", got[0].Answer)
	}
}

// TestKVReuseHoldsTheWholeLastExchange: a follow-up's prompt begins with
// the last prompt and the last answer's own sampled tokens, so the KV cache
// holds every token the last turn evaluated and only the new turn is
// evaluated, also when the answer's text tokenizes otherwise. The answers
// are the same without reuse. (Llama 3's own template trims an answer's
// white space, so there the prompt parts from what was sampled at a
// trimmed space: TestE2EConversationRealTokenizer covers it.)
func TestKVReuseHoldsTheWholeLastExchange(t *testing.T) {
	// Random weights over a synthetic vocabulary sample pieces that the
	// answer's text does not tokenize back into.
	random := func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "m.gguf")
		s := gguf.Tiny
		s.Vocab, s.Context = 4000, 1024 // room for six turns
		if err := gguf.WriteLlama(p, s, gguf.F32, 5); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name  string
		model func(t *testing.T) string
		tmpl  string
	}{
		{"stories260K-chatml", stories, "chatml"},
		{"stories260K-zephyr", stories, "zephyr"},
		{"random-chatml", random, "chatml"},
		{"random-zephyr", random, "zephyr"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var sr, sw Stats
			o := Options{SystemPrompt: "You tell stories.", ChatTemplate: c.tmpl, Temperature: 0}
			ow := o
			o.OnStats = func(s Stats) { sr = s }
			ow.NoKVReuse, ow.OnStats = true, func(s Stats) { sw = s }
			path := c.model(t)
			reuse, whole := openChat(t, path, o), openChat(t, path, ow)
			got, rs := converse(t, reuse, &sr, "c", kvQuestions)
			want, _ := converse(t, whole, &sw, "c", kvQuestions)
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("turn %d: with reuse %q, without %q", i+1, got[i], want[i])
				}
			}
			for i := 1; i < len(rs); i++ {
				// The last turn evaluated its prompt and every sampled
				// token but, when cut at max_tokens, the last one.
				if held := rs[i-1].PromptTokens + rs[i-1].Tokens - 1; rs[i].ReusedTokens < held {
					t.Errorf("turn %d reused %d of %d prompt tokens; the last turn left %d in the cache", i+1, rs[i].ReusedTokens, rs[i].PromptTokens, held)
				}
			}
		})
	}
}
