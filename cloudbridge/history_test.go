package cloudbridge

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent"
)

// TestHistoryPlaceholdersStableAcrossTurns: the cloud gets a conversation's
// earlier turns anonymized, and a value has the same placeholder in every
// turn, so the [PERSON_1] of turn 1 is the [PERSON_1] of turn 3, and an
// answer that quotes it is restored.
func TestHistoryPlaceholdersStableAcrossTurns(t *testing.T) {
	f := newFakeCloud(t)
	b, _ := testBridge(t, f.URL(), nil, nil)
	ctx := context.Background()
	var hist []agent.Turn
	for _, text := range []string{"tell Jonas to call +49 30 1234567", "and write to maria.schmidt+home@example.org", "what did I ask Jonas to do?"} {
		ans, err := b.Generate(ctx, agent.Query{Text: text, History: hist, Caller: "c"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := "You asked: " + text; ans.Answer != want {
			t.Fatalf("answer %q, want %q (restored)", ans.Answer, want)
		}
		hist = append(hist, agent.Turn{User: text, Answer: ans.Answer, Tier: agent.TierCloud, CloudUser: ans.CloudPrompt, CloudAnswer: ans.CloudText})
	}
	bodies := f.Bodies()
	var last chatRequest
	if err := json.Unmarshal([]byte(bodies[len(bodies)-1]), &last); err != nil {
		t.Fatal(err)
	}
	var roles, users []string
	for _, m := range last.Messages {
		roles = append(roles, m.Role)
		if m.Role == "user" {
			users = append(users, m.Content)
		}
	}
	if got := strings.Join(roles, ","); got != "system,user,assistant,user,assistant,user" {
		t.Fatalf("roles %s: want the system prompt, two earlier turns and the question", got)
	}
	if users[0] != "tell [PERSON_1] to call [PHONE_1]" || users[2] != "what did I ask [PERSON_1] to do?" || users[1] != "and write to [EMAIL_1]" {
		t.Fatalf("user messages %q: want one placeholder per value across the turns", users)
	}
	for _, body := range bodies {
		for _, secret := range []string{"Jonas", "1234567", "maria.schmidt"} {
			if strings.Contains(body, secret) {
				t.Fatalf("%q reached the cloud: %s", secret, body)
			}
		}
	}
	if hist[0].CloudUser != "tell [PERSON_1] to call [PHONE_1]" {
		t.Errorf("the turn keeps what the cloud saw: %q", hist[0].CloudUser)
	}
}
