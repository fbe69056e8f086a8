package mqtt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
	"github.com/hedge-edge/hedge/cloudbridge"
	"github.com/hedge-edge/hedge/cloudbridge/anonymize"
)

// budgetedAgent is an agent with a local LLM and a cloud bridge that
// allows each caller one cloud request a day, counted in a store whose
// clock is fixed. chats counts the requests that reached the cloud.
func budgetedAgent(t *testing.T) (*agent.Agent, *atomic.Int64) {
	t.Helper()
	chats := &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chats.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"chat.completion","model":"fake","choices":[{"index":0,"finish_reason":"stop",`+
			`"message":{"role":"assistant","content":"from the cloud"}}],"usage":{"total_tokens":3}}`)
	}))
	t.Cleanup(srv.Close)
	noon := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	st, err := store.Open(t.TempDir(), store.Options{LockTimeout: 5 * time.Second, Now: func() time.Time { return noon }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	anon, err := anonymize.New(anonymize.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cloudbridge.New(cloudbridge.Options{
		BaseURL: srv.URL + "/v1", Model: "fake", APIKey: "sk-test", Anonymizer: anon, State: st,
		Budget: cloudbridge.Budget{CallerRequestsPerDay: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	return agent.New(agent.Options{LLM: localLLM{}, Cloud: b}), chats
}

type localLLM struct{}

func (localLLM) Generate(context.Context, agent.Query, func(string)) (agent.Answer, error) {
	return agent.Answer{Answer: "from the device"}, nil
}

func cloudRequest(id, replyTo string) []byte {
	b, _ := json.Marshal(agent.Query{ID: id, Text: "why is the sky blue", ReplyTo: replyTo, Prefer: agent.PreferCloud})
	return b
}

// askTier publishes a request and returns the tier and degraded mark of
// its reply on s.
func askTier(t *testing.T, c paho.Client, topic string, payload []byte, s *sub) string {
	t.Helper()
	publish(t, c, topic, payload)
	a := answerOf(t, s.next(t, 10*time.Second))
	if a.Error != nil {
		t.Fatalf("reply %+v", a)
	}
	return string(a.Tier) + "/" + a.Degraded
}

// TestCallerBudgetSharedAcrossIDs: requests of one client count against one
// caller budget whatever their ids: those without reply_to share the
// default reply topic's caller, those with a reply_to its parent; another
// reply prefix is another caller.
func TestCallerBudgetSharedAcrossIDs(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	a, chats := budgetedAgent(t)
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}}, a)
	c := newClient(t, b.URL, clientOpts{})
	defaults := subscribe(t, b.URL, "hedge/"+device+"/reply/+", clientOpts{})
	kitchen := subscribe(t, b.URL, "kitchen/replies/+", clientOpts{})
	hall := subscribe(t, b.URL, "hall/replies/+", clientOpts{})
	for _, step := range []struct {
		id, replyTo string
		s           *sub
		want        string
	}{
		{"d1", "", defaults, "cloud/"}, {"d2", "", defaults, "llm/budget"},
		{"k1", "kitchen/replies/k1", kitchen, "cloud/"}, {"k2", "kitchen/replies/k2", kitchen, "llm/budget"},
		{"h1", "hall/replies/h1", hall, "cloud/"},
	} {
		if got := askTier(t, c, hd.tr.QueryTopic(), cloudRequest(step.id, step.replyTo), step.s); got != step.want {
			t.Errorf("request %s (reply_to %q): tier/degraded %s, want %s", step.id, step.replyTo, got, step.want)
		}
	}
	if n := chats.Load(); n != 3 {
		t.Errorf("%d requests reached the cloud, want 3 (one per caller)", n)
	}
}

// TestCallerTopicVouchedByACL: on <prefix>/<device>/query/<name> the
// caller is that topic, whatever the reply topic; a broker ACL that lets
// each user write only its own caller topic makes the name its login, so
// one user cannot spend another's budget.
func TestCallerTopicVouchedByACL(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{
		Users: map[string]string{"hedge": "hedge-secret", "alice": "alice-secret", "bob": "bob-secret"},
		ACL: `user hedge
topic readwrite hedge/#
topic write replies/#

pattern write hedge/dev1/query/%u
pattern read replies/%u/#
`,
	})
	a, chats := budgetedAgent(t)
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}, Username: "hedge", Password: "hedge-secret"}, a)
	alice := newClient(t, b.URL, clientOpts{user: "alice", pass: "alice-secret"})
	aliceReplies := subscribeWith(t, alice, "replies/alice/#")
	bob := newClient(t, b.URL, clientOpts{user: "bob", pass: "bob-secret"})
	bobReplies := subscribeWith(t, bob, "replies/bob/#")
	q := hd.tr.QueryTopic()

	if got := askTier(t, alice, q+"/alice", cloudRequest("a1", "replies/alice/x/a1"), aliceReplies); got != "cloud/" {
		t.Errorf("alice's first: %s, want cloud/", got)
	}
	// Another reply prefix is still alice.
	if got := askTier(t, alice, q+"/alice", cloudRequest("a2", "replies/alice/y/a2"), aliceReplies); got != "llm/budget" {
		t.Errorf("alice's second: %s, want llm/budget", got)
	}
	// Alice may not publish as bob: the broker drops it.
	publish(t, alice, q+"/bob", cloudRequest("a3", "replies/alice/z/a3"))
	aliceReplies.none(t, 500*time.Millisecond)
	if got := askTier(t, bob, q+"/bob", cloudRequest("b1", "replies/bob/b1"), bobReplies); got != "cloud/" {
		t.Errorf("bob's first: %s, want cloud/ (his budget untouched)", got)
	}
	if n := chats.Load(); n != 2 {
		t.Errorf("%d requests reached the cloud, want 2", n)
	}
}
