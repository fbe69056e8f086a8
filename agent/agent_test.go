package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type memCache struct {
	mu sync.Mutex
	m  map[string]Answer
}

func (c *memCache) Get(_ context.Context, k string) (Answer, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.m[k]
	return a, ok, nil
}

func (c *memCache) Put(_ context.Context, k string, a Answer, _ time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]Answer{}
	}
	c.m[k] = a
	return nil
}

type keywordClassifier struct{ calls int }

func (k *keywordClassifier) Classify(_ context.Context, text string) (Intent, error) {
	k.calls++
	switch {
	case strings.Contains(text, "hello"):
		return Intent{Name: "greet", Confidence: 0.95, Threshold: 0.5}, nil
	case strings.Contains(text, "time"):
		return Intent{Name: "time", Confidence: 0.9, Threshold: 0.5}, nil
	}
	return Intent{Name: "greet", Confidence: 0.1, Threshold: 0.5}, nil
}

type skills struct{}

func (skills) Spec(name string) (IntentSpec, bool) {
	switch name {
	case "greet":
		return IntentSpec{Name: name}, true
	case "time":
		return IntentSpec{Name: name, Volatile: true}, true
	}
	return IntentSpec{}, false
}

func (skills) Respond(_ context.Context, _ Query, in Intent) (string, error) {
	return "answer for " + in.Name, nil
}

type gen struct {
	text  string
	err   error
	delay time.Duration
}

func (g *gen) Generate(ctx context.Context, q Query, emit func(string)) (Answer, error) {
	if g.delay > 0 {
		select {
		case <-time.After(g.delay):
		case <-ctx.Done():
			return Answer{}, ctx.Err()
		}
	}
	if g.err != nil {
		return Answer{}, g.err
	}
	// A word is a token: max_tokens cuts the text, as a real tier would.
	words := strings.Fields(g.text)
	ans := Answer{Answer: g.text, Model: "fake"}
	if q.MaxTokens > 0 && len(words) > q.MaxTokens {
		words = words[:q.MaxTokens]
		ans.Answer, ans.Truncated = strings.Join(words, " "), true
	}
	for _, w := range words {
		if emit != nil {
			emit(w + " ")
		}
	}
	return ans, nil
}

type cloud struct {
	gen
	state    CloudState
	deferred []Query
}

func (c *cloud) Check(context.Context, Query) CloudState { return c.state }
func (c *cloud) Defer(_ context.Context, q Query) error {
	c.deferred = append(c.deferred, q)
	return nil
}

func TestHandleNoTier(t *testing.T) {
	a := New(Options{Limits: Limits{MaxQueryBytes: 100}})
	ans := a.Handle(context.Background(), Query{ID: "1", Text: "hello"}, nil)
	if ans.Error == nil || ans.Error.Code != CodeNoTier || ans.ID != "1" {
		t.Fatalf("want no_tier error, got %+v", ans)
	}
	if !strings.Contains(ans.Error.Message, "no local LLM") {
		t.Fatalf("message does not say what is missing: %q", ans.Error.Message)
	}
}

func TestHandleValidation(t *testing.T) {
	a := New(Options{Limits: Limits{MaxQueryBytes: 8}})
	for _, c := range []struct {
		q    Query
		code ErrorCode
	}{
		{Query{Text: "0123456789"}, CodeTooLarge},
		{Query{Text: "  "}, CodeBadRequest},
		{Query{Text: "hi", Prefer: "nearest"}, CodeBadRequest},
		{Query{Text: "hi", MaxTokens: -1}, CodeBadRequest},
		{Query{Text: "\xff"}, CodeBadRequest},
		{Query{Text: "hi\x00"}, CodeBadRequest},
	} {
		ans := a.Handle(context.Background(), c.q, nil)
		if ans.Error == nil || ans.Error.Code != c.code {
			t.Errorf("%+v: want %s, got %+v", c.q, c.code, ans)
		}
	}
}

// TestValidateControlCharacters: tab, newline and carriage return are part
// of a question; other control characters are refused in every field, so
// no tier ever sees them.
func TestValidateControlCharacters(t *testing.T) {
	l := Limits{MaxQueryBytes: 100}
	for _, q := range []Query{
		{Text: "two\r\nlines\tand a tab"},
		{Text: "caf\u00e9 \u2028 \U0001F600", ID: "a/b+#", ReplyTo: "r/1", Conversation: "c"},
	} {
		if e := q.Validate(l); e != nil {
			t.Errorf("%+v refused: %v", q, e)
		}
	}
	for _, c := range []struct {
		q    Query
		want string
	}{
		{Query{Text: "hello\x00world"}, "text holds the control character U+0000"},
		{Query{Text: "hello\x1b[2J"}, "U+001B"},
		{Query{Text: "bell\a"}, "U+0007"},
		{Query{Text: "del\x7f"}, "U+007F"},
		{Query{Text: "csi\u009b"}, "U+009B"},
		{Query{Text: "hi", ID: "a\x00b"}, "id holds the control character U+0000"},
		{Query{Text: "hi", ID: "a\nb"}, "id holds"},
		{Query{Text: "hi", ReplyTo: "r/\x1b"}, "reply_to holds"},
		{Query{Text: "hi", Conversation: "c\r"}, "conversation holds"},
	} {
		e := c.q.Validate(l)
		if e == nil || e.Code != CodeBadRequest || !strings.Contains(e.Message, c.want) {
			t.Errorf("%+v: got %v, want bad_request %q", c.q, e, c.want)
		}
	}
}

// TestHandleChecksReplyTo: a reply_to the courier would refuse is refused
// before anything runs; without a reply_to the check is not consulted.
func TestHandleChecksReplyTo(t *testing.T) {
	var checked []string
	cl := &cloud{state: CloudDown}
	a := New(Options{LLM: &gen{text: "local"}, Cloud: cl, CheckReplyTo: func(topic string) error {
		checked = append(checked, topic)
		if strings.ContainsAny(topic, "+#") {
			return errors.New("reply_to holds a wildcard")
		}
		return nil
	}})
	ans := a.Handle(context.Background(), Query{ID: "w", Text: "why", ReplyTo: "r/+", Prefer: PreferCloud}, nil)
	if ans.Error == nil || ans.Error.Code != CodeBadRequest || ans.Error.Message != "reply_to holds a wildcard" || ans.ID != "w" {
		t.Fatalf("hostile reply_to: %+v", ans)
	}
	if len(cl.deferred) != 0 {
		t.Fatalf("a query with a refused reply_to was queued: %+v", cl.deferred)
	}
	if ans := a.Handle(context.Background(), Query{ID: "ok", Text: "why", ReplyTo: "r/1", Prefer: PreferCloud}, nil); ans.Error != nil || len(cl.deferred) != 1 {
		t.Fatalf("good reply_to: %+v, deferred %d", ans, len(cl.deferred))
	}
	if ans := a.Handle(context.Background(), Query{ID: "none", Text: "why"}, nil); ans.Error != nil {
		t.Fatalf("no reply_to: %+v", ans)
	}
	if strings.Join(checked, ",") != "r/+,r/1" {
		t.Fatalf("checked %q, want the two reply_to topics", checked)
	}
}

func TestHandleSLMAndCache(t *testing.T) {
	cl := &keywordClassifier{}
	c := &memCache{}
	a := New(Options{Cache: c, CacheTTL: time.Hour, Classifier: cl, Skills: skills{}, SLMModel: "intents-v1"})
	first := a.Handle(context.Background(), Query{ID: "a", Text: "hello there"}, nil)
	if first.Error != nil || first.Tier != TierSLM || first.Answer != "answer for greet" || first.Model != "intents-v1" {
		t.Fatalf("first = %+v", first)
	}
	second := a.Handle(context.Background(), Query{ID: "b", Text: "  Hello THERE!"}, nil)
	if second.Tier != TierCache || second.Answer != first.Answer || second.ID != "b" || second.Intent != "greet" {
		t.Fatalf("second = %+v, want a cache hit", second)
	}
	if cl.calls != 1 {
		t.Fatalf("classifier called %d times, want 1", cl.calls)
	}
	// A different preference is a different key.
	third := a.Handle(context.Background(), Query{ID: "c", Text: "hello there", Prefer: PreferLocal}, nil)
	if third.Tier != TierSLM {
		t.Fatalf("third = %+v, want slm", third)
	}
}

// lengthCase is one request of a cache-by-length table and the reply it
// must get: its tier (TierCache for a hit), text and truncation flag.
type lengthCase struct {
	text      string
	prefer    Prefer
	max       int
	tier      Tier
	answer    string
	truncated bool
}

func runLengthCases(t *testing.T, a *Agent, cases []lengthCase) {
	t.Helper()
	for i, c := range cases {
		ans := a.Handle(context.Background(), Query{Text: c.text, Prefer: c.prefer, MaxTokens: c.max}, nil)
		if ans.Error != nil || ans.Tier != c.tier || ans.Answer != c.answer || ans.Truncated != c.truncated {
			t.Errorf("%d: %q %s max_tokens %d: tier %s %q truncated %v, want %s %q truncated %v",
				i, c.text, c.prefer, c.max, ans.Tier, ans.Answer, ans.Truncated, c.tier, c.answer, c.truncated)
		}
	}
}

// TestCacheServesOnlyTheLengthAsked: a generated answer (LLM, cloud) is
// cached for the max_tokens it was made for, so one cut short never
// answers a request that allows more, nor a long one a request that allows
// less; a template (SLM) answer serves every max_tokens. The truncation
// flag comes back with a hit.
func TestCacheServesOnlyTheLengthAsked(t *testing.T) {
	const story = "once upon a time there was a fox"
	const sky = "the cloud says light scatters"
	a := New(Options{Cache: &memCache{}, CacheTTL: time.Hour, Classifier: &keywordClassifier{}, Skills: skills{},
		LLM: &gen{text: story}, Cloud: &cloud{state: CloudReady, gen: gen{text: sky}}})
	runLengthCases(t, a, []lengthCase{
		{"tell me a story", PreferLocal, 5, TierLLM, "once upon a time there", true},
		{"tell me a story", PreferLocal, 5, TierCache, "once upon a time there", true},
		{"Tell me a story!", PreferLocal, 500, TierLLM, story, false},
		{"tell me a story", PreferLocal, 500, TierCache, story, false},
		{"tell me a story", PreferLocal, 2, TierLLM, "once upon", true},
		{"tell me a story", PreferLocal, 0, TierLLM, story, false},
		{"tell me a story", PreferLocal, 0, TierCache, story, false},
		{"tell me a story", PreferLocal, 5, TierCache, "once upon a time there", true},
		{"why is the sky blue", PreferCloud, 3, TierCloud, "the cloud says", true},
		{"why is the sky blue", PreferCloud, 3, TierCache, "the cloud says", true},
		{"why is the sky blue", PreferCloud, 50, TierCloud, sky, false},
		{"why is the sky blue", PreferCloud, 4, TierCloud, "the cloud says light", true},
		{"hello there", PreferAuto, 1, TierSLM, "answer for greet", false},
		{"hello there", PreferAuto, 500, TierCache, "answer for greet", false},
		{"hello there", PreferAuto, 0, TierCache, "answer for greet", false},
	})
}

// TestSemanticCacheServesOnlyTheLengthAsked: a near-duplicate's answer
// follows the same rule: a generated one stands in only for a request of
// its max_tokens, a template for any.
func TestSemanticCacheServesOnlyTheLengthAsked(t *testing.T) {
	const hi = "greetings from the cloud to you"
	c := &vecCache{}
	a := New(Options{Cache: c, CacheTTL: time.Hour, Semantic: c, SemanticThreshold: 0.95,
		Classifier: &vecClassifier{}, Skills: skills{}, Cloud: &cloud{state: CloudReady, gen: gen{text: hi}}})
	runLengthCases(t, a, []lengthCase{
		{"hello there", PreferCloud, 2, TierCloud, "greetings from", true},
		{"hello there friend", PreferCloud, 2, TierCache, "greetings from", true},
		{"hello there pal", PreferCloud, 9, TierCloud, hi, false},
		{"hello there", PreferAuto, 2, TierSLM, "answer for greet", false},
		{"hello there mate", PreferAuto, 9, TierCache, "answer for greet", false},
	})
}

func TestHandleVolatileNotCached(t *testing.T) {
	c := &memCache{}
	a := New(Options{Cache: c, CacheTTL: time.Hour, Classifier: &keywordClassifier{}, Skills: skills{}})
	for i := 0; i < 2; i++ {
		ans := a.Handle(context.Background(), Query{Text: "what time is it"}, nil)
		if ans.Tier != TierSLM {
			t.Fatalf("run %d: %+v", i, ans)
		}
	}
	if len(c.m) != 0 {
		t.Fatalf("volatile answer was cached: %v", c.m)
	}
}

func TestHandleStreamsLLM(t *testing.T) {
	a := New(Options{Classifier: &keywordClassifier{}, Skills: skills{}, LLM: &gen{text: "once upon a time"}})
	var got []string
	ans := a.Handle(context.Background(), Query{Text: "tell me a story"}, func(s string) { got = append(got, s) })
	if ans.Tier != TierLLM || ans.Answer != "once upon a time" || len(got) != 4 {
		t.Fatalf("ans %+v, chunks %q", ans, got)
	}
	if ans.Intent != "greet" || ans.Confidence != 0.1 {
		t.Fatalf("the classifier's verdict is not reported: %+v", ans)
	}
}

func TestHandleCloudDownQueues(t *testing.T) {
	cl := &cloud{state: CloudDown}
	c := &memCache{}
	a := New(Options{Cache: c, CacheTTL: time.Hour, Classifier: &keywordClassifier{}, Skills: skills{}, LLM: &gen{text: "local"}, Cloud: cl})
	ans := a.Handle(context.Background(), Query{ID: "q", Text: "why is the sky blue", ReplyTo: "r/1"}, nil)
	if ans.Tier != TierLLM || !ans.Queued || ans.Degraded != "offline" {
		t.Fatalf("ans = %+v", ans)
	}
	if len(cl.deferred) != 1 || cl.deferred[0].ReplyTo != "r/1" {
		t.Fatalf("deferred = %+v", cl.deferred)
	}
	if len(c.m) != 0 {
		t.Fatal("a degraded answer was cached")
	}
}

func TestHandleCloudFailureFallsBack(t *testing.T) {
	cl := &cloud{state: CloudReady, gen: gen{err: errors.New("connection refused")}}
	a := New(Options{Classifier: &keywordClassifier{}, Skills: skills{}, LLM: &gen{text: "local"}, Cloud: cl})
	ans := a.Handle(context.Background(), Query{Text: "why is the sky blue"}, nil)
	if ans.Tier != TierLLM || !ans.Queued || len(cl.deferred) != 1 {
		t.Fatalf("ans = %+v deferred %d", ans, len(cl.deferred))
	}
}

// TestHandleCloudRefusalNotDeferred: a cloud that refuses the query (a bad
// key, an unknown model) is up, so the query is answered locally, marked
// cloud_config, and never queued; without a local tier the reply is the
// cloud_config error. A failure on the wire still queues.
func TestHandleCloudRefusalNotDeferred(t *testing.T) {
	refusal := fmt.Errorf("cloud refused the request (401): %w", ErrCloudConfig)
	for _, tc := range []struct {
		name     string
		err      error
		llm      Generator
		tier     Tier
		code     ErrorCode
		degraded string
		queued   bool
	}{
		{"refused, llm answers", refusal, &gen{text: "local"}, TierLLM, "", "cloud_config", false},
		{"refused, no local tier", refusal, nil, "", CodeCloudConfig, "", false},
		{"link down, llm answers", errors.New("connection refused"), &gen{text: "local"}, TierLLM, "", "offline", true},
		// The error reply says in a field that the cloud answer follows.
		{"link down, no local tier", errors.New("connection refused"), nil, "", CodeNoTier, "", true},
		{"link down, llm fails", errors.New("connection refused"), &gen{err: ErrBusy}, "", CodeBusy, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := &cloud{state: CloudReady, gen: gen{err: tc.err}}
			c := &memCache{}
			o := Options{Cloud: cl, Cache: c, CacheTTL: time.Hour}
			if tc.llm != nil {
				o.LLM = tc.llm
			}
			ans := New(o).Handle(context.Background(), Query{ID: "1", Text: "why is the sky blue", ReplyTo: "r/1", Prefer: PreferCloud}, nil)
			code := ErrorCode("")
			if ans.Error != nil {
				code = ans.Error.Code
			}
			if ans.Tier != tc.tier || code != tc.code || ans.Degraded != tc.degraded || ans.Queued != tc.queued {
				t.Fatalf("ans = %+v, want tier %q code %q degraded %q queued %v", ans, tc.tier, tc.code, tc.degraded, tc.queued)
			}
			if wantDeferred := tc.err != refusal; (len(cl.deferred) == 1) != wantDeferred {
				t.Errorf("deferred %d escalations, want queued %v", len(cl.deferred), wantDeferred)
			}
			if code == CodeCloudConfig && !strings.Contains(ans.Error.Message, "(401)") {
				t.Errorf("message %q does not carry the cloud's refusal", ans.Error.Message)
			}
			if len(c.m) != 0 {
				t.Error("a degraded answer was cached")
			}
		})
	}
}

func TestHandleCloudAnswers(t *testing.T) {
	cl := &cloud{state: CloudReady, gen: gen{text: "rayleigh scattering"}}
	a := New(Options{Classifier: &keywordClassifier{}, Skills: skills{}, LLM: &gen{text: "local"}, Cloud: cl})
	ans := a.Handle(context.Background(), Query{Text: "why is the sky blue"}, nil)
	if ans.Tier != TierCloud || ans.Answer != "rayleigh scattering" || ans.Queued {
		t.Fatalf("ans = %+v", ans)
	}
}

func TestHandleBusyAndTimeout(t *testing.T) {
	a := New(Options{LLM: &gen{err: ErrBusy}})
	if ans := a.Handle(context.Background(), Query{Text: "x"}, nil); ans.Error == nil || ans.Error.Code != CodeBusy {
		t.Fatalf("want busy, got %+v", ans)
	}
	a = New(Options{LLM: &gen{delay: time.Second, text: "late"}, RequestTimeout: 20 * time.Millisecond})
	if ans := a.Handle(context.Background(), Query{Text: "x"}, nil); ans.Error == nil || ans.Error.Code != CodeTimeout {
		t.Fatalf("want timeout, got %+v", ans)
	}
}

// stopTransport serves nothing; it returns when ctx ends, like a real one.
type stopTransport struct{}

func (stopTransport) Name() string { return "stop" }
func (stopTransport) Serve(ctx context.Context, _ Handler) error {
	<-ctx.Done()
	return nil
}

func TestRunDrainsAndCancelsAfterGrace(t *testing.T) {
	a := New(Options{LLM: &gen{delay: time.Hour}, ShutdownGrace: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx, stopTransport{}) }()
	replies := make(chan Answer, 5)
	for i := 0; i < 5; i++ {
		go func() { replies <- a.Handle(context.Background(), Query{Text: "slow"}, nil) }()
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	for i := 0; i < 5; i++ {
		ans := <-replies
		if ans.Error == nil || ans.Error.Code != CodeShuttingDown {
			t.Fatalf("reply %d = %+v, want shutting_down", i, ans)
		}
	}
	if ans := a.Handle(context.Background(), Query{Text: "after"}, nil); ans.Error == nil || ans.Error.Code != CodeShuttingDown {
		t.Fatalf("after shutdown: %+v", ans)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Hello!":               "hello",
		"  what  time\tis it?": "what time is it",
		"¿Qué hora es?":        "qué hora es",
		"...":                  "",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// failAfter streams some tokens, then fails like a dropped connection.
type failAfter struct{ cloud }

func (f *failAfter) Generate(_ context.Context, _ Query, emit func(string)) (Answer, error) {
	emit("partial ")
	return Answer{}, errors.New("connection reset")
}

func TestCloudFailureMidStreamDoesNotMixTexts(t *testing.T) {
	cl := &failAfter{cloud{state: CloudReady}}
	a := New(Options{LLM: &gen{text: "local words"}, Cloud: cl})
	var got []string
	ans := a.Handle(context.Background(), Query{Text: "why"}, func(s string) { got = append(got, s) })
	if ans.Tier != TierLLM || ans.Answer != "local words" || !ans.Queued {
		t.Fatalf("ans = %+v", ans)
	}
	if len(got) != 1 || got[0] != "partial " {
		t.Fatalf("chunks = %q: local tokens were appended to the cloud's", got)
	}
}

// vecCache is a Cache and a SemanticCache that compares vectors exactly
// by cosine, like the store does.
type vecCache struct {
	memCache
	vecs map[string]map[string][]float32 // namespace → key → vector
}

func (v *vecCache) PutVector(_ context.Context, key, ns string, vec []float32) error {
	if v.vecs == nil {
		v.vecs = map[string]map[string][]float32{}
	}
	if v.vecs[ns] == nil {
		v.vecs[ns] = map[string][]float32{}
	}
	v.vecs[ns][key] = vec
	return nil
}

func (v *vecCache) Near(ctx context.Context, ns string, vec []float32, minCos float64) (Answer, bool, error) {
	for k, w := range v.vecs[ns] {
		var dot, a, b float64
		for i := range vec {
			dot += float64(vec[i] * w[i])
			a += float64(vec[i] * vec[i])
			b += float64(w[i] * w[i])
		}
		if dot/(sqrt(a)*sqrt(b)) >= minCos {
			return v.Get(ctx, k)
		}
	}
	return Answer{}, false, nil
}

func sqrt(x float64) float64 {
	r := x
	for i := 0; i < 50 && r > 0; i++ {
		r = (r + x/r) / 2
	}
	return r
}

// vecClassifier gives "hello there" and "hello there friend" nearly the same
// vector, "what time is it" another.
type vecClassifier struct{ keywordClassifier }

func (c *vecClassifier) Classify(ctx context.Context, text string) (Intent, error) {
	in, _ := c.keywordClassifier.Classify(ctx, text)
	switch {
	case strings.HasPrefix(text, "hello there"):
		in.Vector = []float32{1, 0.01 * float32(len(text)-11), 0}
	case strings.HasPrefix(text, "tell me about"):
		in.Vector = []float32{0, 1, 0}
	default:
		in.Vector = []float32{0, 0, 1}
	}
	return in, nil
}

func TestHandleSemanticCache(t *testing.T) {
	c := &vecCache{}
	a := New(Options{Cache: c, CacheTTL: time.Hour, Semantic: c, SemanticThreshold: 0.95,
		Classifier: &vecClassifier{}, Skills: skills{}})
	first := a.Handle(context.Background(), Query{Text: "hello there"}, nil)
	if first.Tier != TierSLM {
		t.Fatalf("first = %+v", first)
	}
	near := a.Handle(context.Background(), Query{Text: "hello there friend"}, nil)
	if near.Tier != TierCache || near.Answer != first.Answer || !strings.Contains(near.Reason, "near-duplicate") {
		t.Fatalf("near-duplicate = %+v, want a semantic cache hit", near)
	}
	// Another preference is another namespace.
	if other := a.Handle(context.Background(), Query{Text: "hello there friend", Prefer: PreferLocal}, nil); other.Tier == TierCache {
		t.Fatalf("a near-duplicate under another preference hit the cache: %+v", other)
	}
	// A near-duplicate whose classification is not accepted takes no part.
	a = New(Options{Cache: c, CacheTTL: time.Hour, Semantic: c, SemanticThreshold: 0.95,
		Classifier: &vecClassifier{}, Skills: skills{}, LLM: &gen{text: "an open answer"}})
	a.Handle(context.Background(), Query{Text: "tell me about France"}, nil)
	if open := a.Handle(context.Background(), Query{Text: "tell me about Spain"}, nil); open.Tier == TierCache {
		t.Fatalf("an open question was answered from a near-duplicate: %+v", open)
	}
	// Volatile intents take no part.
	a.Handle(context.Background(), Query{Text: "what time is it"}, nil)
	if tm := a.Handle(context.Background(), Query{Text: "what time is it now"}, nil); tm.Tier == TierCache {
		t.Fatalf("a volatile intent was served from the semantic cache: %+v", tm)
	}
}

// TestCacheFollowsTheSystemPrompt: a generated answer made under one system
// prompt (a client's system message, a JSON format's instruction) is not
// served to the same text under another, nor under none; a template (SLM)
// is, whatever the system prompt.
func TestCacheFollowsTheSystemPrompt(t *testing.T) {
	a := New(Options{Cache: &memCache{}, CacheTTL: time.Hour, Classifier: &keywordClassifier{}, Skills: skills{},
		LLM: &gen{text: "a story"}})
	ask := func(text, system string) Answer {
		return a.Handle(context.Background(), Query{ID: "q", Text: text, Prefer: PreferLocal, System: system}, nil)
	}
	for i, c := range []struct {
		text, system string
		tier         Tier
	}{
		{"tell me a story", "Answer in JSON.", TierLLM},
		{"tell me a story", "Answer in JSON.", TierCache},
		{"tell me a story", "", TierLLM},
		{"tell me a story", "Be brief.", TierLLM},
		{"tell me a story", "", TierCache},
		{"hello there", "Answer in JSON.", TierSLM},
		{"hello there", "", TierCache},
	} {
		if got := ask(c.text, c.system); got.Tier != c.tier {
			t.Errorf("%d: %q under system %q: tier %s, want %s", i, c.text, c.system, got.Tier, c.tier)
		}
	}
}

// TestCachedFromNamesTheTierThatAnswered: a cache hit says which tier made
// the answer (the Wyoming transport tells intents from other answers by it).
func TestCachedFromNamesTheTierThatAnswered(t *testing.T) {
	a := New(Options{Cache: &memCache{}, CacheTTL: time.Hour, Classifier: &keywordClassifier{}, Skills: skills{},
		LLM: &gen{text: "a story"}})
	for _, c := range []struct {
		text       string
		tier, from Tier
	}{
		{"hello there", TierSLM, ""}, {"hello there", TierCache, TierSLM},
		{"tell me a story", TierLLM, ""}, {"tell me a story", TierCache, TierLLM},
	} {
		ans := a.Handle(context.Background(), Query{Text: c.text, Prefer: PreferLocal}, nil)
		if ans.Tier != c.tier || ans.CachedFrom != c.from {
			t.Errorf("%q: tier %q cached from %q, want %q from %q", c.text, ans.Tier, ans.CachedFrom, c.tier, c.from)
		}
	}
}
