package intents

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
)

func TestStarterParses(t *testing.T) {
	s, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	labels, oos := s.Labels()
	if len(labels) < 15 || oos != OutOfScopeLabel || labels[len(labels)-1] != oos {
		t.Errorf("starter labels %v, oos %q", labels, oos)
	}
	texts, ys := s.Examples()
	if len(texts) != len(ys) || len(texts) < 200 {
		t.Errorf("starter has %d examples", len(texts))
	}
	for _, name := range []string{"greeting", "thanks", "goodbye", "help", "time", "date", "device_status", "lights_on_kitchen", "fan_off", "plug_on"} {
		if _, ok := NewSkills(s, nil, nil).Spec(name); !ok {
			t.Errorf("starter set lacks intent %s", name)
		}
	}
	if len(s.Hash) != 64 {
		t.Errorf("hash %q", s.Hash)
	}
}

func TestBadFiles(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"not yaml", "intents: [", "not a valid intents file"},
		{"unknown key", "version: 1\nintents:\n  - name: a\n    exampels: [x, y]\n    answer: hi\n", "exampels"},
		{"no version", "intents:\n  - {name: a, examples: [x, y], answer: hi}\n", "file: version: 0"},
		{"no intents", "version: 1\n", "file: intents"},
		{"bad name", "version: 1\nintents:\n  - {name: Hello World, examples: [x, y], answer: hi}\n", `intent "Hello World": name`},
		{"no name", "version: 1\nintents:\n  - {examples: [x, y], answer: hi}\n", "intent 1: name"},
		{"duplicate", "version: 1\nintents:\n  - {name: a, examples: [x, y], answer: hi}\n  - {name: a, examples: [x, y], answer: hi}\n", `intent "a": name: a: is defined twice`},
		{"reserved", "version: 1\nintents:\n  - {name: out_of_scope, examples: [x, y], answer: hi}\n", "reserved"},
		{"one example", "version: 1\nintents:\n  - {name: a, examples: [x], answer: hi}\n", `intent "a": examples: 1`},
		{"empty example", "version: 1\nintents:\n  - {name: a, examples: [x, \" \"], answer: hi}\n", `intent "a": examples[1]`},
		{"nothing to do", "version: 1\nintents:\n  - {name: a, examples: [x, y]}\n", `intent "a": answer`},
		{"bad template", "version: 1\nintents:\n  - {name: a, examples: [x, y], answer: \"{{.time\"}\n", `intent "a": answer`},
		{"not a mapping", ".", "not a valid intents file: line 1: cannot unmarshal"},
		{"NaN threshold", "version: 1\nintents:\n  - {name: a, examples: [x, y], answer: hi, threshold: .nan}\n", `intent "a": threshold: NaN`},
		{"name with a newline", "version: 1\nintents:\n  - {name: \"a\\nb\", examples: [x, y], answer: hi}\n", `intent "a\nb": name: "a\nb": must be`},
		{"bad threshold", "version: 1\nintents:\n  - {name: a, examples: [x, y], answer: hi, threshold: 1.5}\n", `intent "a": threshold: 1.5`},
		{"bad ttl", "version: 1\nintents:\n  - {name: a, examples: [x, y], answer: hi, cache_ttl: soon}\n", `intent "a": cache_ttl: soon`},
		{"bad escalate", "version: 1\nintents:\n  - {name: a, examples: [x, y], answer: hi, escalate: sometimes}\n", `intent "a": escalate: sometimes`},
		{"wildcard topic", "version: 1\nintents:\n  - {name: a, examples: [x, y], action: {topic: \"home/#\", payload: on}}\n", `intent "a": action.topic`},
		{"bad qos", "version: 1\nintents:\n  - {name: a, examples: [x, y], action: {topic: home/a, payload: on, qos: 3}}\n", `intent "a": action.qos: 3`},
		{"empty oos", "version: 1\nintents:\n  - {name: a, examples: [x, y], answer: hi}\nout_of_scope: [\"\"]\n", "out_of_scope: [0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want it to mention %q", err, tc.want)
			}
		})
	}
	// Every problem at once.
	_, err := Parse([]byte("version: 2\nintents:\n  - {name: a, examples: [x], answer: hi, escalate: no}\n"))
	var p Problems
	if !errors.As(err, &p) || len(p) != 3 {
		t.Errorf("want 3 problems, got %v", err)
	}
	if _, err := Load("/nonexistent/intents.yaml"); err == nil || !strings.Contains(err.Error(), "read intents") {
		t.Errorf("missing file: %v", err)
	}
}

type recorder struct {
	mu   sync.Mutex
	msgs []string
	err  error
}

func (r *recorder) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, topic+" "+string(payload)+" "+string('0'+qos))
	return r.err
}

const skillsFile = `version: 1
intents:
  - name: time
    examples: [what time is it, time please]
    answer: "It's {{.time}}{{.nosuchfact}}."
    volatile: true
    escalate: never
    threshold: 0.7
    cache_ttl: 5m
  - name: lamp_on
    examples: [lamp on, turn on the lamp]
    action: {topic: "home/{{.room}}/lamp", payload: "ON at {{.time}}", qos: 1}
  - name: fan_on
    examples: [fan on, turn on the fan]
    answer: Fan on.
    action: {topic: home/fan, payload: "ON"}
out_of_scope: [write a poem]
`

func TestSkills(t *testing.T) {
	s, err := Parse([]byte(skillsFile))
	if err != nil {
		t.Fatal(err)
	}
	facts := func() map[string]string { return map[string]string{"time": "12:34"} }
	pub := &recorder{}
	sk := NewSkills(s, facts, pub)
	ctx := context.Background()
	spec, ok := sk.Spec("time")
	want := agent.IntentSpec{Name: "time", Threshold: 0.7, CacheTTL: 5 * time.Minute, Volatile: true, Escalate: agent.EscalateNever}
	if !ok || spec != want {
		t.Errorf("Spec(time) = %+v %v, want %+v", spec, ok, want)
	}
	if _, ok := sk.Spec(OutOfScopeLabel); ok {
		t.Error("the out-of-scope class has a spec")
	}
	if _, ok := sk.Spec("nope"); ok {
		t.Error("unknown intent has a spec")
	}
	got, err := sk.Respond(ctx, agent.Query{Text: "time?"}, agent.Intent{Name: "time"})
	if err != nil || got != "It's 12:34." {
		t.Errorf("time answer %q %v", got, err)
	}
	got, err = sk.Respond(ctx, agent.Query{}, agent.Intent{Name: "lamp_on"})
	if err != nil || got != "Done." {
		t.Errorf("lamp answer %q %v", got, err)
	}
	got, err = sk.Respond(ctx, agent.Query{}, agent.Intent{Name: "fan_on"})
	if err != nil || got != "Fan on." {
		t.Errorf("fan answer %q %v", got, err)
	}
	if strings.Join(pub.msgs, "|") != "home/{{.room}}/lamp ON at 12:34 1|home/fan ON 0" {
		t.Errorf("published %q", pub.msgs)
	}
	pub.err = errors.New("broker gone")
	if _, err := sk.Respond(ctx, agent.Query{}, agent.Intent{Name: "fan_on"}); err == nil || !strings.Contains(err.Error(), "broker gone") {
		t.Errorf("publish failure: %v", err)
	}
	// No publisher: a clear error reply, no crash.
	_, err = NewSkills(s, nil, nil).Respond(ctx, agent.Query{}, agent.Intent{Name: "fan_on"})
	var ae *agent.Error
	if !errors.As(err, &ae) || ae.Code != agent.CodeNoTier || !strings.Contains(ae.Message, "MQTT is not configured") {
		t.Errorf("no publisher: %v", err)
	}
	// No facts: the template renders with the facts empty.
	got, err = NewSkills(s, nil, nil).Respond(ctx, agent.Query{}, agent.Intent{Name: "time"})
	if err != nil || got != "It's ." {
		t.Errorf("no facts: %q %v", got, err)
	}
}

func TestActionIntentsAreNeverCached(t *testing.T) {
	set, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	sk := NewSkills(set, nil, nil)
	spec, ok := sk.Spec("lights_on_kitchen")
	if !ok || !spec.Volatile {
		t.Fatalf("lights_on_kitchen spec = %+v (known %v), want volatile: its answer confirms a publish", spec, ok)
	}
}
