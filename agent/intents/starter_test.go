package intents

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/models/slm"
)

// TestStarterClassifies trains the starter set as hedge run does and runs
// it in ONNX Runtime: greetings and device commands are accepted, general
// questions (seen in out_of_scope and unseen) are not.
func TestStarterClassifies(t *testing.T) {
	root, _ := filepath.Abs("../..")
	var out, errb bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "fetch-ort.sh"))
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("fetch-ort.sh: %v\n%s", err, errb.String())
	}
	rt, err := slm.OpenRuntime(strings.TrimSpace(out.String()), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	set, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	labels, oos := set.Labels()
	texts, ys := set.Examples()
	c := slm.Corpus{Labels: labels, OutOfScope: oos, Source: set.Hash}
	for i, s := range texts {
		c.Examples = append(c.Examples, slm.Example{Text: s, Label: ys[i]})
	}
	b, _, r, err := slm.Build(context.Background(), c, slm.DefaultBuildOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("starter: %d examples, validation accuracy %.3f, ECE %.3f, threshold %.3f (%s), %d bytes, %s",
		r.Examples, r.Accuracy, r.ECE, r.Threshold, r.ThresholdRule, r.ModelBytes, r.Duration)
	clf, err := rt.LoadClassifier(b)
	if err != nil {
		t.Fatal(err)
	}
	defer clf.Close()
	sk := NewSkills(set, nil, nil)
	accepted := func(text string) (agent.Intent, bool) {
		in, err := clf.Classify(context.Background(), text)
		if err != nil {
			t.Fatal(err)
		}
		s := agent.Situation{HaveSLM: true, Intent: in, DefaultThreshold: 0.5}
		s.Spec, s.SpecKnown = sk.Spec(in.Name)
		return in, agent.Decide(s).Tier == agent.TierSLM
	}
	for text, want := range map[string]string{
		"hello":                             "greeting",
		"Hello!":                            "greeting",
		"hi there hedge":                    "greeting",
		"thank you so much":                 "thanks",
		"what time is it?":                  "time",
		"what's the date today":             "date",
		"please turn on the kitchen lights": "lights_on_kitchen",
		"switch off the bedroom light":      "lights_off_bedroom",
		"how hot is the cpu":                "device_status",
		"turn the fan off":                  "fan_off",
	} {
		in, ok := accepted(text)
		if !ok || in.Name != want {
			t.Errorf("%q: %q at %.3f (threshold %.3f, accepted %v), want %s accepted; top %v", text, in.Name, in.Confidence, in.Threshold, ok, want, in.Top)
		}
	}
	if in, _ := accepted("hello"); in.Confidence < 0.8 {
		t.Errorf("hello: confidence %.3f, want ≥ 0.8", in.Confidence)
	}
	for _, text := range []string{
		"what is the capital of France",
		"explain quantum entanglement",
		"who discovered penicillin",
		"what is the tallest building in the world",
		"how do airplanes stay in the air",
		"write a haiku about autumn",
		// A story or a phrase that holds an intent's word in another sense.
		"once upon a time a fox lived in the woods",
		"I had the time of my life",
		"it is time to go to bed",
		"the time machine by h g wells",
	} {
		if in, ok := accepted(text); ok {
			t.Errorf("%q: accepted as %s at %.3f (threshold %.3f); want it to move on", text, in.Name, in.Confidence, in.Threshold)
		}
	}
}
