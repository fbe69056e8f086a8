package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// memMemory is an in-memory Memory keyed by caller and id.
type memMemory struct {
	mu sync.Mutex
	m  map[string][]Turn
}

func (m *memMemory) History(_ context.Context, caller, id string) ([]Turn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Turn(nil), m.m[caller+"|"+id]...), nil
}

func (m *memMemory) Append(_ context.Context, caller, id string, t Turn) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string][]Turn{}
	}
	m.m[caller+"|"+id] = append(m.m[caller+"|"+id], t)
	return nil
}

func (m *memMemory) Delete(_ context.Context, caller, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, had := m.m[caller+"|"+id]
	delete(m.m, caller+"|"+id)
	return had, nil
}

// historyGen answers with what it saw of the history, as a model whose
// answer depends on the conversation would.
type historyGen struct{ calls int }

func (g *historyGen) Generate(_ context.Context, q Query, _ func(string)) (Answer, error) {
	g.calls++
	var seen []string
	for _, t := range q.History {
		seen = append(seen, t.User+"→"+t.Answer)
	}
	return Answer{Answer: fmt.Sprintf("%s [after: %s]", q.Text, strings.Join(seen, "; ")), Model: "fake"}, nil
}

// TestConversationHistoryAcrossTiers: a turn the SLM answered is part of
// the history the LLM gets next, and the turns are kept per caller.
func TestConversationHistoryAcrossTiers(t *testing.T) {
	mem := &memMemory{}
	g := &historyGen{}
	a := New(Options{Memory: mem, Classifier: &keywordClassifier{}, Skills: skills{}, LLM: g})
	ctx := context.Background()
	ask := func(caller, conv, text string) Answer {
		t.Helper()
		ans := a.Handle(ctx, Query{Text: text, Conversation: conv, Caller: caller}, nil)
		if ans.Error != nil {
			t.Fatalf("%s: %v", text, ans.Error)
		}
		return ans
	}
	if ans := ask("uid:1", "c", "hello"); ans.Tier != TierSLM {
		t.Fatalf("greeting answered by %s", ans.Tier)
	}
	ans := ask("uid:1", "c", "and what did I just ask you?")
	if ans.Tier != TierLLM || ans.Answer != "and what did I just ask you? [after: hello→answer for greet]" {
		t.Fatalf("the LLM did not see the SLM's turn: %+v", ans)
	}
	// The same conversation id of another caller is another conversation.
	if ans := ask("uid:2", "c", "and what did I just ask you?"); ans.Answer != "and what did I just ask you? [after: ]" {
		t.Fatalf("another caller's conversation leaked: %q", ans.Answer)
	}
	h, _ := mem.History(ctx, "uid:1", "c")
	if len(h) != 2 || h[0].Tier != TierSLM || h[0].Intent != "greet" || h[1].Tier != TierLLM {
		t.Fatalf("kept turns %+v", h)
	}
}

// TestFollowUpNeverFromAnotherConversation: "why?" in conversation B is
// never answered with conversation A's cached "why?"; first turns and
// stateless queries still use the cache.
func TestFollowUpNeverFromAnotherConversation(t *testing.T) {
	mem, c, g := &memMemory{}, &memCache{}, &historyGen{}
	a := New(Options{Memory: mem, Cache: c, CacheTTL: time.Hour, LLM: g})
	ctx := context.Background()
	ask := func(conv, text string) Answer {
		return a.Handle(ctx, Query{Text: text, Conversation: conv, Caller: "u"}, nil)
	}
	ask("A", "tell me about rain")
	a1 := ask("A", "why?")
	ask("B", "tell me about snow")
	b1 := ask("B", "why?")
	if b1.Tier == TierCache || b1.Answer == a1.Answer || !strings.Contains(b1.Answer, "snow") {
		t.Fatalf("B's follow-up got %+v; A's was %q", b1, a1.Answer)
	}
	// A first turn is a stateless question: the cache answers it.
	if ans := ask("C", "tell me about rain"); ans.Tier != TierCache {
		t.Fatalf("a first turn was not answered from the cache: %+v", ans)
	}
	if ans := a.Handle(ctx, Query{Text: "why?"}, nil); ans.Tier == TierCache {
		t.Fatalf("a stateless why? got a follow-up's cached answer: %+v", ans)
	}
}

func TestConversationShowAndRm(t *testing.T) {
	mem := &memMemory{}
	a := New(Options{Memory: mem, LLM: &historyGen{}})
	ctx := context.Background()
	a.Handle(ctx, Query{Text: "tell me about rain", Conversation: "c", Caller: "u"}, nil)
	show := a.Handle(ctx, Query{Op: OpConversationShow, Conversation: "c", Caller: "u"}, nil)
	if show.Error != nil || len(show.Turns) != 1 || show.Turns[0].User != "tell me about rain" {
		t.Fatalf("show: %+v", show)
	}
	if other := a.Handle(ctx, Query{Op: OpConversationShow, Conversation: "c", Caller: "v"}, nil); len(other.Turns) != 0 {
		t.Fatalf("another caller reads the conversation: %+v", other)
	}
	if rm := a.Handle(ctx, Query{Op: OpConversationRm, Conversation: "c", Caller: "u"}, nil); rm.Answer != "deleted" {
		t.Fatalf("rm: %+v", rm)
	}
	if rm := a.Handle(ctx, Query{Op: OpConversationRm, Conversation: "c", Caller: "u"}, nil); rm.Answer != "no such conversation" {
		t.Fatalf("rm twice: %+v", rm)
	}
	if bad := a.Handle(ctx, Query{Op: "conversation.list", Conversation: "c"}, nil); bad.Error == nil || bad.Error.Code != CodeBadRequest {
		t.Fatalf("unknown op: %+v", bad)
	}
}
