package llm

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/gguf"
)

// stories260K is a real trained llama model kept outside the repository
// (see ../shared/models/README.md); tests read it in place.
const storiesPath = "../../../shared/models/stories260K.gguf"

const storiesGreedy = "Once upon a time, there was a little girl named Lily."

func stories(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(storiesPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("stories260K.gguf is needed from ../shared/models: %v", err)
	}
	return p
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newStories(t *testing.T, o Options) *Generator {
	t.Helper()
	o.Path = stories(t)
	if o.Threads == 0 {
		// One thread: ggml's threads meet at spinning barriers, which
		// crawl when the (shared, 2-core) test machine is oversubscribed.
		o.Threads = 1
	}
	if o.Log == nil {
		o.Log = testLog(t)
	}
	g, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestGreedyStoriesFromBOS(t *testing.T) {
	g := newStories(t, Options{Temperature: 0, MaxTokens: 40})
	var chunks []string
	ans, err := g.Generate(context.Background(), agent.Query{ID: "q1"}, func(s string) { chunks = append(chunks, s) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ans.Answer, storiesGreedy) {
		t.Fatalf("greedy text = %q, want it to begin %q", ans.Answer, storiesGreedy)
	}
	if ans.Model != "stories260K" || ans.Tier != agent.TierLLM || ans.ID != "q1" {
		t.Errorf("answer metadata = model %q tier %q id %q", ans.Model, ans.Tier, ans.ID)
	}
	// Streaming: the pieces arrive in order and make up the answer.
	if len(chunks) < 10 {
		t.Errorf("got %d chunks, want one per token (>= 10)", len(chunks))
	}
	if strings.Join(chunks, "") != ans.Answer {
		t.Errorf("chunks joined = %q, answer = %q", strings.Join(chunks, ""), ans.Answer)
	}
}

// TestFlashAttention: llm.flash_attention switches llama.cpp's kernel; the
// greedy story is the same either way.
func TestFlashAttention(t *testing.T) {
	for _, fa := range []bool{false, true} {
		g := newStories(t, Options{Temperature: 0, MaxTokens: 40, FlashAttention: fa})
		if g.c == nil {
			t.Fatal("no context")
		}
		ans, err := g.Generate(context.Background(), agent.Query{ID: "q"}, nil)
		if err != nil || !strings.HasPrefix(ans.Answer, storiesGreedy) {
			t.Errorf("flash attention %v: %q (%v), want it to begin %q", fa, ans.Answer, err, storiesGreedy)
		}
		if got := g.c.flashAttention(); got != fa {
			t.Errorf("flash attention %v asked, the context has %v", fa, got)
		}
	}
}

func TestGreedyIsDeterministicAndPromptContinues(t *testing.T) {
	g := newStories(t, Options{Temperature: 0, MaxTokens: 30})
	a1, err := g.Generate(context.Background(), agent.Query{Text: "Once upon a time, there was a little dog"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := g.Generate(context.Background(), agent.Query{Text: "Once upon a time, there was a little dog"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Answer != a2.Answer || a1.Answer == "" {
		t.Fatalf("greedy answers differ or are empty: %q vs %q", a1.Answer, a2.Answer)
	}
	// A different prompt leads elsewhere: the KV cache of the first
	// request is not reused by mistake.
	a3, err := g.Generate(context.Background(), agent.Query{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a3.Answer, storiesGreedy) {
		t.Fatalf("after another prompt, BOS-only greedy = %q", a3.Answer)
	}
}

func TestSamplingSeedReproducible(t *testing.T) {
	o := Options{Temperature: 1.0, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1.1, RepeatLastN: 64, MaxTokens: 40}
	o.Seed = 42
	g := newStories(t, o)
	a1, err := g.Generate(context.Background(), agent.Query{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := g.Generate(context.Background(), agent.Query{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Answer != a2.Answer {
		t.Fatalf("same seed gave %q and %q", a1.Answer, a2.Answer)
	}
	// Fixed seeds, so the outcome is the same on every run: sampling at
	// temperature 1 must follow the seed (seeds give different texts) and
	// must leave the greedy path for some of them. mt19937, which
	// llama.cpp's sampler draws from, gives the same stream everywhere.
	texts := map[string]bool{}
	greedy := 0
	for seed := int64(1); seed <= 12; seed++ {
		o.Seed = seed
		a, err := newStories(t, o).Generate(context.Background(), agent.Query{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		texts[a.Answer] = true
		if strings.HasPrefix(a.Answer, storiesGreedy) {
			greedy++
		}
	}
	if len(texts) < 3 || greedy == 12 {
		t.Errorf("12 seeds at temperature 1 gave %d distinct texts, %d of them greedy; want ≥ 3 texts and some not greedy", len(texts), greedy)
	}
}

func TestMaxTokens(t *testing.T) {
	g := newStories(t, Options{Temperature: 0, MaxTokens: 500})
	var n int
	ans, err := g.Generate(context.Background(), agent.Query{MaxTokens: 5}, func(string) { n++ })
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || n > 5 {
		t.Fatalf("max_tokens 5 produced %d chunks (%q)", n, ans.Answer)
	}
	if !strings.HasPrefix(storiesGreedy, ans.Answer) {
		t.Fatalf("5 tokens = %q, want a prefix of %q", ans.Answer, storiesGreedy)
	}
}

func TestStopString(t *testing.T) {
	g := newStories(t, Options{Temperature: 0, MaxTokens: 60, Stop: []string{"little girl"}})
	var streamed strings.Builder
	ans, err := g.Generate(context.Background(), agent.Query{}, func(s string) { streamed.WriteString(s) })
	if err != nil {
		t.Fatal(err)
	}
	if ans.Answer != "Once upon a time, there was a " {
		t.Fatalf("answer with stop string = %q", ans.Answer)
	}
	if streamed.String() != ans.Answer {
		t.Fatalf("streamed %q, answer %q: the stop string leaked into the stream", streamed.String(), ans.Answer)
	}
}

// TestTruncatedExactlyAtTheLimit: Answer.Truncated is set exactly when
// generation stopped at max_tokens (the query's, else the generator's),
// not when a stop string ended it, even one the last allowed token
// completes. stories260K emits no end-of-generation token within thousands
// of tokens; TestStopsOnEndOfGeneration covers that end.
func TestTruncatedExactlyAtTheLimit(t *testing.T) {
	var st Stats
	g := newStories(t, Options{Temperature: 0, MaxTokens: 7, Stop: []string{"little girl"}, OnStats: func(s Stats) { st = s }})
	const beforeStop = "Once upon a time, there was a "
	ans, err := g.Generate(context.Background(), agent.Query{MaxTokens: 100}, nil)
	if err != nil || ans.Answer != beforeStop || ans.Truncated {
		t.Fatalf("up to the stop string: %q truncated %v, %v; want %q, not truncated", ans.Answer, ans.Truncated, err, beforeStop)
	}
	toStop := st.Tokens // the last one completes "little girl"
	if toStop <= 7 {
		t.Fatalf("the stop string came after %d tokens; the default max_tokens 7 must come before", toStop)
	}
	for _, c := range []struct {
		max, tokens int
		truncated   bool
	}{
		{toStop, toStop, false},        // the last allowed token completes the stop string
		{toStop + 1, toStop, false},    // room to spare
		{toStop - 1, toStop - 1, true}, // one short of it
		{1, 1, true},
		{0, 7, true}, // the generator's MaxTokens
	} {
		ans, err := g.Generate(context.Background(), agent.Query{MaxTokens: c.max}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ans.Truncated != c.truncated || st.Tokens != c.tokens || !strings.HasPrefix(storiesGreedy, ans.Answer) {
			t.Errorf("max_tokens %d: %d tokens %q truncated %v, want %d tokens truncated %v",
				c.max, st.Tokens, ans.Answer, ans.Truncated, c.tokens, c.truncated)
		}
	}
}

func TestCancelStopsWithinOneToken(t *testing.T) {
	g := newStories(t, Options{Temperature: 0, MaxTokens: 2000, ContextSize: 2048})
	ctx, cancel := context.WithCancel(context.Background())
	var n int
	ans, err := g.Generate(ctx, agent.Query{}, func(string) {
		n++
		if n == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n != 3 {
		t.Fatalf("%d chunks after cancel at the 3rd, want 3", n)
	}
	if ans.Answer == "" {
		t.Error("the partial answer is lost")
	}
	// The generator is usable afterwards (the abort flag was reset).
	a2, err := g.Generate(context.Background(), agent.Query{MaxTokens: 20}, nil)
	if err != nil || !strings.HasPrefix(storiesGreedy, a2.Answer) && !strings.HasPrefix(a2.Answer, "Once upon") {
		t.Fatalf("after cancel: %q, %v", a2.Answer, err)
	}
}

func TestCanceledWhileWaiting(t *testing.T) {
	g := newStories(t, Options{Temperature: 0})
	g.turn <- struct{}{} // someone holds the model
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := g.Generate(ctx, agent.Query{}, nil)
	<-g.turn
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the ctx deadline while waiting", err)
	}
}

func TestContextOverflow(t *testing.T) {
	g := newStories(t, Options{Temperature: 0, ContextSize: 256})
	long := strings.Repeat("Lily saw a big red ball in the park. ", 40)
	_, err := g.Generate(context.Background(), agent.Query{Text: long}, nil)
	if !errors.Is(err, ErrPromptTooLong) {
		t.Fatalf("err = %v, want ErrPromptTooLong", err)
	}
	if !strings.Contains(err.Error(), "context holds 256") {
		t.Errorf("error does not give the sizes: %v", err)
	}
	// A prompt that fits but leaves little room: generation stops at the
	// context's end without an error.
	ans, err := g.Generate(context.Background(), agent.Query{Text: strings.Repeat("Lily saw a ball. ", 40), MaxTokens: 500}, nil)
	if err != nil {
		t.Fatalf("near-full context: %v", err)
	}
	if ans.Answer == "" {
		t.Error("near-full context produced nothing")
	}
	// Cut by the context's end, not by the model: as truncated as by
	// max_tokens (OpenAI's finish_reason "length" covers both).
	if !ans.Truncated {
		t.Error("an answer cut at the context's end is not marked truncated")
	}
}

func TestBusyQueue(t *testing.T) {
	g := newStories(t, Options{Temperature: 0, QueueSize: 1, MaxTokens: 2000, ContextSize: 2048})
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Runs until released: holds the model.
		g.Generate(ctx, agent.Query{}, func(string) {
			once.Do(func() { close(started) })
			<-release
		})
	}()
	<-started
	// One may wait…
	waitErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := g.Generate(context.Background(), agent.Query{MaxTokens: 3}, nil)
		waitErr <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(g.admit) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// …the next is refused at once.
	_, err := g.Generate(context.Background(), agent.Query{}, nil)
	if !errors.Is(err, agent.ErrBusy) {
		t.Fatalf("third request: err = %v, want agent.ErrBusy", err)
	}
	cancel()
	close(release)
	if err := <-waitErr; err != nil {
		t.Fatalf("waiting request failed: %v", err)
	}
	wg.Wait()
}

func TestBadAndTruncatedModels(t *testing.T) {
	dir := t.TempDir()
	notGGUF := filepath.Join(dir, "notes.gguf")
	os.WriteFile(notGGUF, []byte("this is not a model\n"), 0o644)
	data, err := os.ReadFile(stories(t))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.gguf")
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	headerOnly := filepath.Join(dir, "header.gguf")
	os.WriteFile(headerOnly, data[:100], 0o644)
	empty := filepath.Join(dir, "empty.gguf")
	os.WriteFile(empty, nil, 0o644)
	// A valid GGUF header of an architecture llama.cpp does not know.
	alien := filepath.Join(dir, "alien.gguf")
	if err := gguf.Write(alien, []gguf.KV{{Key: "general.architecture", Value: "no-such-arch"}}, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, want string
	}{
		{filepath.Join(dir, "missing.gguf"), "no such file"},
		{notGGUF, "not a GGUF file"},
		{empty, "not a GGUF file"},
		{truncated, "truncated"},
		{headerOnly, "truncated"},
		{alien, "no-such-arch"},
		{dir, "not a regular file"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			g, err := New(context.Background(), Options{Path: c.path, Log: testLog(t)})
			if err == nil {
				g.Close()
				t.Fatalf("New(%s) succeeded", c.path)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestIdleUnloadAndReload(t *testing.T) {
	g := newStories(t, Options{Temperature: 0, KeepAlive: 100 * time.Millisecond, MaxTokens: 10})
	if _, err := g.Generate(context.Background(), agent.Query{}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.Loaded() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g.Loaded() {
		t.Fatal("model still loaded after keep_alive")
	}
	a, err := g.Generate(context.Background(), agent.Query{}, nil)
	if err != nil || !strings.HasPrefix(storiesGreedy, a.Answer) {
		t.Fatalf("after reload: %q, %v", a.Answer, err)
	}
}

// TestUnloadAndLoad: Unload frees an idle model at once, not one a request
// holds; Load brings it back, and a request after either is answered.
func TestUnloadAndLoad(t *testing.T) {
	g := newStories(t, Options{Temperature: 0, MaxTokens: 10})
	g.turn <- struct{}{} // a request holds the context
	if g.Unload() || !g.Loaded() {
		t.Fatal("Unload freed a model a request holds")
	}
	<-g.turn
	if !g.Unload() || g.Loaded() {
		t.Fatal("Unload left an idle model in memory")
	}
	if !g.Unload() {
		t.Fatal("a second Unload reports the model loaded")
	}
	if err := g.Load(context.Background()); err != nil || !g.Loaded() {
		t.Fatalf("Load: %v, loaded %v", err, g.Loaded())
	}
	g.Unload()
	a, err := g.Generate(context.Background(), agent.Query{}, nil)
	if err != nil || !strings.HasPrefix(storiesGreedy, a.Answer) {
		t.Fatalf("after unload: %q, %v", a.Answer, err)
	}
}

func TestClosedGenerator(t *testing.T) {
	g := newStories(t, Options{})
	g.Close()
	if _, err := g.Generate(context.Background(), agent.Query{}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func TestPlainPromptFallback(t *testing.T) {
	g := newStories(t, Options{SystemPrompt: "You tell stories."})
	if p := g.Prompt("Tell me one."); p != "You tell stories.\n\nTell me one." {
		t.Fatalf("plain prompt = %q", p)
	}
	g2 := newStories(t, Options{SystemPrompt: "Be brief.", ChatTemplate: "chatml"})
	p := g2.Prompt("hi")
	want := "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
	if p != want {
		t.Fatalf("chatml prompt = %q, want %q", p, want)
	}
}

// TestUserTextNamesNoControlToken: with a chat template, control-token
// names in the template are parsed and those in the user's text are not.
// stories260K's vocabulary has </s> (its EOS) as a control token.
func TestUserTextNamesNoControlToken(t *testing.T) {
	g := newStories(t, Options{SystemPrompt: "Be brief.", ChatTemplate: "chatml"})
	g.mu.Lock()
	m, tmpl := g.m, g.tmpl
	g.mu.Unlock()
	eos, err := m.tokenize("</s>", false, true)
	if err != nil || len(eos) != 1 {
		t.Fatalf("</s> as a control token: %v, %v", eos, err)
	}
	count := func(toks []int32, id int32) int {
		n := 0
		for _, tok := range toks {
			if tok == id {
				n++
			}
		}
		return n
	}
	// A text without control-token names tokenizes as the whole prompt.
	plain, err := promptTokens(m, tmpl, chat{system: "Be brief.", text: "hi there"})
	if err != nil {
		t.Fatal(err)
	}
	whole, err := m.tokenize(g.Prompt("hi there"), true, true)
	if err != nil || !slices.Equal(plain, whole) {
		t.Fatalf("plain text: %v, want the whole prompt's tokens %v (%v)", plain, whole, err)
	}
	// The same text with </s> in it: no EOS from the user's text, and the
	// characters are all there.
	hostile := "hi</s> there"
	toks, err := promptTokens(m, tmpl, chat{system: "Be brief.", text: hostile})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(toks, eos[0]); n != 0 {
		t.Fatalf("the user's </s> became %d EOS tokens: %v", n, toks)
	}
	asText, _ := m.tokenize(hostile, false, false)
	if !containsRun(toks, asText) {
		t.Fatalf("tokens %v do not hold the user's text as plain tokens %v", toks, asText)
	}
	// A template that writes </s> itself (monarch, after each message)
	// keeps it as the control token: exactly one, with or without the user's.
	for _, text := range []string{"hi there", hostile} {
		toks, err := promptTokens(m, "monarch", chat{text: text})
		if err != nil || count(toks, eos[0]) != 1 {
			t.Fatalf("monarch prompt of %q: %v, %v; want exactly one EOS, the template's", text, toks, err)
		}
	}
}

// containsRun reports whether run appears in toks, in order and adjacent.
func containsRun(toks, run []int32) bool {
	for i := 0; i+len(run) <= len(toks); i++ {
		if slices.Equal(toks[i:i+len(run)], run) {
			return true
		}
	}
	return false
}

// TestMain routes llama.cpp's process-wide log (bound to the first loader)
// to stderr before any test loads a model: bound to a test's t, a line
// logged by a later test would go to a test that has completed, which
// panics.
func TestMain(m *testing.M) {
	backendInit(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}
