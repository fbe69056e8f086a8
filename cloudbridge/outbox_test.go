package cloudbridge

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
)

// runBridge runs b.Run until the test ends.
func runBridge(t *testing.T, b *Bridge) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// TestOutageDeferDrain: with the link down escalations are queued; when it
// returns every entry is answered, restored, cached and delivered exactly
// once, late, to its own reply_to.
func TestOutageDeferDrain(t *testing.T) {
	f := newFakeCloud(t)
	f.down.Store(true)
	st := openStore(t, t.TempDir())
	defer st.Close()
	courier := &recordingCourier{}
	b, logs := testBridge(t, f.URL(), st, func(o *Options) {
		o.Courier = courier
		o.BackoffMin, o.BackoffMax = 30*time.Millisecond, 60*time.Millisecond
	})
	ctx := context.Background()
	if _, err := b.Generate(ctx, agent.Query{Text: "is the link up?"}, nil); err == nil {
		t.Fatal("Generate succeeded with the server down")
	}
	if b.Check(ctx, agent.Query{Text: "x"}) != agent.CloudDown {
		t.Fatal("link not down")
	}
	const n = 7
	texts := map[string]string{}
	for i := range n {
		q := agent.Query{
			ID: fmt.Sprint("q", i), Text: fmt.Sprintf("question %d from Jonas at jonas%d@example.org", i, i),
			ReplyTo: fmt.Sprintf("hedge/dev/reply/q%d", i), Prefer: agent.PreferCloud, Caller: "hedge/dev/query",
		}
		texts[q.ID] = q.Text
		if err := b.Defer(ctx, q); err != nil {
			t.Fatal(err)
		}
		// The same request again (a QoS 1 redelivery) is queued once.
		if err := b.Defer(ctx, q); err != nil {
			t.Fatalf("second Defer: %v", err)
		}
	}
	if s := b.Stats(ctx); s.OutboxDepth != n || s.Deferred != n {
		t.Fatalf("stats %+v, want %d queued", s, n)
	}
	runBridge(t, b)
	// Down: the monitor probes and fails, nothing is delivered.
	waitFor(t, "failed probes", 10*time.Second, func() bool { return b.Stats(ctx).Failures >= 3 })
	if len(courier.Got()) != 0 {
		t.Fatal("delivered while down")
	}
	f.down.Store(false)
	waitFor(t, "every late answer", 20*time.Second, func() bool { return len(courier.Got()) >= n && b.Stats(ctx).OutboxDepth == 0 })
	// Give a double delivery a chance to show up before counting.
	time.Sleep(200 * time.Millisecond)
	got := courier.Got()
	if len(got) != n {
		t.Fatalf("%d deliveries, want exactly %d", len(got), n)
	}
	seen := map[string]int{}
	for _, d := range got {
		a := d.Answer
		seen[a.ID]++
		if d.ReplyTo != "hedge/dev/reply/"+a.ID {
			t.Errorf("answer %s went to %q", a.ID, d.ReplyTo)
		}
		if !a.Late || a.Tier != agent.TierCloud || !a.Anonymized || a.Model != "fake-model" {
			t.Errorf("answer %+v is not a late cloud answer", a)
		}
		if a.Answer != "You asked: "+texts[a.ID] {
			t.Errorf("answer %q not restored to %q", a.Answer, "You asked: "+texts[a.ID])
		}
		if a.Entities["email"] != 1 || a.Entities["person"] != 1 {
			t.Errorf("entities %v", a.Entities)
		}
		// Cached under the original query's key.
		hit, ok, err := st.Get(ctx, agent.CacheKey(agent.Query{Text: texts[a.ID], Prefer: agent.PreferCloud}, agent.TierCloud, "v1"))
		if err != nil || !ok || hit.Answer != a.Answer || hit.Late {
			t.Errorf("cache of %s: %+v %v %v", a.ID, hit, ok, err)
		}
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	if s := b.Stats(ctx); s.Late != n || s.Link != LinkClosed {
		t.Errorf("stats %+v", s)
	}
	// Nothing of the queries reached the logs.
	if strings.Contains(logs.String(), "example.org") || strings.Contains(logs.String(), "Jonas") {
		t.Errorf("query text in the logs: %s", logs.String())
	}
	// A redelivery of an answered query is not queued again.
	if err := b.Defer(ctx, agent.Query{ID: "q0", Text: texts["q0"], ReplyTo: "hedge/dev/reply/q0", Prefer: agent.PreferCloud, Caller: "hedge/dev/query"}); err != nil {
		t.Fatal(err)
	}
	if s := b.Stats(ctx); s.OutboxDepth != 0 {
		t.Errorf("an answered key was queued again")
	}
}

// TestDeliveryRetried: an answer the courier could not deliver is kept
// (answered) and delivered later without a second cloud call.
func TestDeliveryRetried(t *testing.T) {
	f := newFakeCloud(t)
	courier := &recordingCourier{}
	courier.fail.Store(true)
	b, _ := testBridge(t, f.URL(), nil, func(o *Options) { o.Courier = courier })
	ctx := context.Background()
	if err := b.Defer(ctx, agent.Query{ID: "1", Text: "hello", ReplyTo: "r/1"}); err != nil {
		t.Fatal(err)
	}
	runBridge(t, b)
	waitFor(t, "a failed delivery", 10*time.Second, func() bool { return b.Stats(ctx).DeliveryFailures >= 2 })
	courier.fail.Store(false)
	waitFor(t, "the delivery", 10*time.Second, func() bool { return len(courier.Got()) == 1 && b.Stats(ctx).OutboxDepth == 0 })
	if n := f.chats.Load(); n != 1 {
		t.Errorf("%d cloud calls for one escalation, want 1", n)
	}
}

// TestRejectedEntryDropped: an escalation the API refuses is tried
// MaxAttempts times, then dropped and counted, and its asker gets a late
// cloud_config error instead of the answer it was promised.
func TestRejectedEntryDropped(t *testing.T) {
	f := newFakeCloud(t)
	f.setHandle(func(w http.ResponseWriter, r *http.Request, req chatRequest) bool {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"context too long","type":"invalid_request_error"}}`)
		return true
	})
	courier := &recordingCourier{}
	b, _ := testBridge(t, f.URL(), nil, func(o *Options) {
		o.Courier, o.MaxAttempts, o.BackoffMin = courier, 3, 5*time.Millisecond
	})
	ctx := context.Background()
	if err := b.Defer(ctx, agent.Query{ID: "1", Text: "hello", ReplyTo: "r/1"}); err != nil {
		t.Fatal(err)
	}
	runBridge(t, b)
	waitFor(t, "the drop", 10*time.Second, func() bool { return b.Stats(ctx).Drops["rejected"] == 1 })
	if s := b.Stats(ctx); s.OutboxDepth != 0 || f.chats.Load() != 3 || s.Link != LinkClosed {
		t.Errorf("stats %+v, %d calls", s, f.chats.Load())
	}
	got := courier.Got()
	if len(got) != 1 || got[0].ReplyTo != "r/1" || !got[0].Answer.Late || got[0].Answer.ID != "1" ||
		got[0].Answer.Error == nil || got[0].Answer.Error.Code != agent.CodeCloudConfig || got[0].Answer.Answer != "" {
		t.Fatalf("deliveries %+v, want one late cloud_config error to r/1", got)
	}
	if msg := got[0].Answer.Error.Message; !strings.Contains(msg, "dropped") || !strings.Contains(msg, "(400)") {
		t.Errorf("message %q does not say the escalation was dropped and why", msg)
	}
}

// TestOutboxFullDropsOldest: the store's bound drops the oldest entries;
// the bridge counts them.
func TestOutboxFullDropsOldest(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{OutboxMaxCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, _ := testBridge(t, closedPort(t), st, nil)
	ctx := context.Background()
	for i := range 5 {
		if err := b.Defer(ctx, agent.Query{ID: fmt.Sprint(i), Text: fmt.Sprint("question ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s := b.Stats(ctx)
	if s.OutboxDepth != 3 || s.Drops["full"] != 2 || s.Deferred != 5 {
		t.Errorf("stats %+v, want depth 3 and 2 drops", s)
	}
	// The newest three are the ones kept.
	entries, err := st.Claim(ctx, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, e := range entries {
		kept = append(kept, string(e.Payload))
	}
	if len(kept) != 3 || !strings.Contains(kept[0], "question 2") || !strings.Contains(kept[2], "question 4") {
		t.Errorf("kept %v", kept)
	}
}

// slowGenerator is the local tier of the agent-level test.
type slowGenerator struct{ calls atomic.Int64 }

func (g *slowGenerator) Generate(ctx context.Context, q agent.Query, emit func(string)) (agent.Answer, error) {
	g.calls.Add(1)
	return agent.Answer{Answer: "local answer", Model: "local-llm"}, nil
}

// TestAgentQueuesAndDeliversLate wires the bridge into the agent: prefer
// cloud with the link down answers locally with queued: true; when the link
// returns the cloud answer arrives late on reply_to.
func TestAgentQueuesAndDeliversLate(t *testing.T) {
	f := newFakeCloud(t)
	f.down.Store(true)
	st := openStore(t, t.TempDir())
	defer st.Close()
	courier := &recordingCourier{}
	b, _ := testBridge(t, f.URL(), st, func(o *Options) { o.Courier = courier })
	llm := &slowGenerator{}
	a := agent.New(agent.Options{
		Limits: agent.Limits{MaxQueryBytes: 4096}, LLM: llm, Cloud: b,
		Cache: st, CacheTTL: time.Hour, CacheVersion: "v1",
	})
	ctx := context.Background()
	q := agent.Query{ID: "late-1", Text: "What should Maria Schmidt cook tonight?", ReplyTo: "hedge/dev/reply/late-1", Prefer: agent.PreferCloud}
	ans := a.Handle(ctx, q, nil)
	if ans.Error != nil || ans.Tier != agent.TierLLM || !ans.Queued || ans.Degraded != "offline" || ans.Answer != "local answer" {
		t.Fatalf("first reply %+v, want a queued local answer", ans)
	}
	// The link is known down now: the next one queues without a cloud try.
	q2 := agent.Query{ID: "late-2", Text: "And tomorrow?", ReplyTo: "hedge/dev/reply/late-2", Prefer: agent.PreferCloud}
	calls := f.chats.Load()
	ans = a.Handle(ctx, q2, nil)
	if !ans.Queued || ans.Tier != agent.TierLLM || f.chats.Load() != calls {
		t.Fatalf("second reply %+v", ans)
	}
	runBridge(t, b)
	f.down.Store(false)
	waitFor(t, "the late answers", 20*time.Second, func() bool { return len(courier.Got()) == 2 })
	for _, d := range courier.Got() {
		if !d.Answer.Late || d.Answer.Tier != agent.TierCloud || d.ReplyTo != "hedge/dev/reply/"+d.Answer.ID {
			t.Errorf("late delivery %+v", d)
		}
		if d.Answer.ID == "late-1" && d.Answer.Answer != "You asked: "+q.Text {
			t.Errorf("late answer %q", d.Answer.Answer)
		}
	}
	// The late answer now serves the same question from the cache.
	ans = a.Handle(ctx, q, nil)
	if ans.Tier != agent.TierCache || ans.Answer != "You asked: "+q.Text {
		t.Errorf("after the late answer: %+v", ans)
	}
	// With the link up, prefer cloud answers from the cloud at once.
	ans = a.Handle(ctx, agent.Query{ID: "3", Text: "Hello from Lena", Prefer: agent.PreferCloud}, nil)
	if ans.Tier != agent.TierCloud || !ans.Anonymized || ans.Entities["person"] != 1 || ans.Answer != "You asked: Hello from Lena" {
		t.Errorf("cloud reply %+v", ans)
	}
}

// TestCorruptEntryDropped: an entry whose payload cannot be read is
// dropped and counted, and does not block the others.
func TestCorruptEntryDropped(t *testing.T) {
	f := newFakeCloud(t)
	st := openStore(t, t.TempDir())
	defer st.Close()
	ctx := context.Background()
	if _, err := st.Enqueue(ctx, store.OutboxEntry{Key: "bad", ReplyTo: "r/bad", Payload: []byte("{not json")}); err != nil {
		t.Fatal(err)
	}
	courier := &recordingCourier{}
	b, _ := testBridge(t, f.URL(), st, func(o *Options) { o.Courier = courier })
	if err := b.Defer(ctx, agent.Query{ID: "good", Text: "hello", ReplyTo: "r/good"}); err != nil {
		t.Fatal(err)
	}
	runBridge(t, b)
	waitFor(t, "the drain", 10*time.Second, func() bool { return b.Stats(ctx).OutboxDepth == 0 && len(courier.Got()) == 1 })
	if s := b.Stats(ctx); s.Drops["corrupt"] != 1 || courier.Got()[0].Answer.ID != "good" {
		t.Errorf("stats %+v, deliveries %+v", s, courier.Got())
	}
}

// TestLateAnswerCachedForItsLength: a late cloud answer is cached under the
// key the agent looks up for the queued query's max_tokens, its truncation
// with it, and serves no request that allows another length.
func TestLateAnswerCachedForItsLength(t *testing.T) {
	f := newFakeCloud(t)
	f.cut = true
	f.down.Store(true)
	st := openStore(t, t.TempDir())
	defer st.Close()
	courier := &recordingCourier{}
	b, _ := testBridge(t, f.URL(), st, func(o *Options) { o.Courier = courier })
	a := agent.New(agent.Options{
		Limits: agent.Limits{MaxQueryBytes: 4096}, LLM: &slowGenerator{}, Cloud: b,
		Cache: st, CacheTTL: time.Hour, CacheVersion: "v1",
	})
	ctx := context.Background()
	const text, cut = "What should we cook tonight?", "You asked: What "
	q := agent.Query{ID: "cut-1", Text: text, ReplyTo: "hedge/dev/reply/cut-1", Prefer: agent.PreferCloud, MaxTokens: 3}
	if ans := a.Handle(ctx, q, nil); !ans.Queued {
		t.Fatalf("reply %+v, want a queued local answer", ans)
	}
	runBridge(t, b)
	f.down.Store(false)
	waitFor(t, "the late answer", 20*time.Second, func() bool { return len(courier.Got()) == 1 })
	if late := courier.Got()[0].Answer; late.Answer != cut || !late.Truncated {
		t.Fatalf("late answer %+v, want %q truncated", late, cut)
	}
	if ans := a.Handle(ctx, agent.Query{Text: text, Prefer: agent.PreferCloud, MaxTokens: 3}, nil); ans.Tier != agent.TierCache || ans.Answer != cut || !ans.Truncated {
		t.Errorf("same length: %+v, want the cached late answer, truncated", ans)
	}
	if ans := a.Handle(ctx, agent.Query{Text: text, Prefer: agent.PreferCloud}, nil); ans.Tier != agent.TierCloud || ans.Answer != "You asked: "+text || ans.Truncated {
		t.Errorf("no max_tokens: %+v, want the whole answer from the cloud", ans)
	}
}
