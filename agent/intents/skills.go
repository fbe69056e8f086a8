package intents

import (
	"context"
	"fmt"
	"strings"
	"text/template"

	"github.com/hedge-edge/hedge/agent"
)

// Skills answers the intents of a Set on the device. It is safe for
// concurrent use.
type Skills struct {
	set   *Set
	facts func() map[string]string
	pub   agent.Publisher
}

var _ agent.Skills = (*Skills)(nil)

// NewSkills returns the skills of set. facts, when not nil, supplies the
// device facts templates use (read on each answer, so the time is now);
// pub, when not nil, performs actions. Without pub an action intent
// replies with an error saying MQTT is not configured.
func NewSkills(set *Set, facts func() map[string]string, pub agent.Publisher) *Skills {
	return &Skills{set: set, facts: facts, pub: pub}
}

// Spec returns the policy of intent name; an unknown name and the
// out-of-scope class return ok == false.
func (s *Skills) Spec(name string) (agent.IntentSpec, bool) {
	c, ok := s.set.byName[name]
	if !ok {
		return agent.IntentSpec{}, false
	}
	return c.spec, true
}

// Respond performs in's action, if it has one, and returns its answer. An
// action intent without an answer replies "Done.".
func (s *Skills) Respond(ctx context.Context, q agent.Query, in agent.Intent) (string, error) {
	c, ok := s.set.byName[in.Name]
	if !ok {
		return "", agent.Errorf(agent.CodeInternal, "intent %q has no local answer", in.Name)
	}
	var facts map[string]string
	if s.facts != nil && c.usesFacts {
		facts = s.facts()
	}
	if c.action != nil {
		if s.pub == nil {
			return "", agent.Errorf(agent.CodeNoTier, "intent %s acts over MQTT, and MQTT is not configured (mqtt section)", in.Name)
		}
		payload, err := render(c.payload, facts)
		if err != nil {
			return "", fmt.Errorf("intent %s: action payload: %w", in.Name, err)
		}
		if err := s.pub.Publish(ctx, c.action.Topic, []byte(payload), c.action.QoS, c.action.Retain); err != nil {
			return "", fmt.Errorf("intent %s: publish to %s: %w", in.Name, c.action.Topic, err)
		}
	}
	if c.answer == nil {
		return "Done.", nil
	}
	text, err := render(c.answer, facts)
	if err != nil {
		return "", fmt.Errorf("intent %s: answer: %w", in.Name, err)
	}
	return text, nil
}

func render(t *template.Template, facts map[string]string) (string, error) {
	var b strings.Builder
	if facts == nil {
		facts = map[string]string{}
	}
	if err := t.Execute(&b, facts); err != nil {
		return "", err
	}
	return b.String(), nil
}
