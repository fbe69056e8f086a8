// Package intents reads hedge's intents file — the intents the device
// answers itself, with example utterances to train the intent model on —
// and answers classified queries: a templated text or an action (an MQTT
// publish). It ships a starter set for a home or IoT device.
package intents

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
)

//go:embed starter.yaml
var starter []byte

// Starter returns the embedded starter intents file.
func Starter() []byte { return bytes.Clone(starter) }

// Version is the only intents file version this hedge reads.
const Version = 1

// File is an intents file as written.
type File struct {
	Version int      `yaml:"version"`
	Intents []Intent `yaml:"intents"`
	// OutOfScope lists queries the device must not answer itself (general
	// knowledge, opinions, anything outside its job). They are trained as
	// a class of their own, so that such queries move on to the LLM or the
	// cloud instead of landing on the nearest intent.
	OutOfScope []string `yaml:"out_of_scope"`
}

// Intent is one intent as written.
type Intent struct {
	Name     string   `yaml:"name"`
	Examples []string `yaml:"examples"`
	// Answer is a text/template over the device facts ({{.time}},
	// {{.date}}, {{.uptime}}, {{.load}}, {{.temperature}}, …).
	Answer string  `yaml:"answer"`
	Action *Action `yaml:"action"`
	// Threshold overrides the model's acceptance threshold (0: the model's).
	Threshold float64 `yaml:"threshold"`
	// CacheTTL overrides the cache TTL; Volatile answers are never cached.
	CacheTTL string `yaml:"cache_ttl"`
	Volatile bool   `yaml:"volatile"`
	Escalate string `yaml:"escalate"`
}

// Action is an MQTT publish; Payload is a template like Answer.
type Action struct {
	Topic   string `yaml:"topic"`
	Payload string `yaml:"payload"`
	QoS     byte   `yaml:"qos"`
	Retain  bool   `yaml:"retain"`
}

// Set is a parsed, validated intents file.
type Set struct {
	// Hash is the sha256 of the file's bytes: the model trained on it is
	// stored under it, and cache keys include it.
	Hash       string
	File       File
	byName     map[string]*compiled
	outOfScope string
}

type compiled struct {
	spec    agent.IntentSpec
	answer  *template.Template
	payload *template.Template
	action  *Action
	// usesFacts: the answer or payload is a template with fields, so a
	// reply needs the device facts (reading them costs file reads).
	usesFacts bool
}

// OutOfScopeLabel is the class name the out-of-scope examples train; no
// intent may use it.
const OutOfScopeLabel = "out_of_scope"

// Problems is every problem found in an intents file, one sentence each,
// naming the intent and the field.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "\n") }

var (
	nameRe  = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)
	topicRe = regexp.MustCompile(`^[^#+\x00]+$`)
)

// Load reads and parses the intents file at path; "" means the starter set.
func Load(path string) (*Set, error) {
	if path == "" {
		return Parse(starter)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read intents: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("intents %s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates an intents file. Unknown keys are errors;
// every problem is reported at once as Problems.
func Parse(data []byte) (*Set, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		// One problem per line of the file that is wrong, each on one line
		// of its own: a value quoted in the message may span lines.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Problems{"not a valid intents file: " + config.YAMLMessage(err)}
		}
		var p Problems
		for _, m := range te.Errors {
			p = append(p, "not a valid intents file: "+config.YAMLMessage(errors.New(m)))
		}
		return nil, p
	}
	sum := sha256.Sum256(data)
	s := &Set{Hash: hex.EncodeToString(sum[:]), File: f, byName: map[string]*compiled{}, outOfScope: OutOfScopeLabel}
	var p Problems
	// Worded as hedge.yaml's problems are: a value that would not print
	// as one line of text is quoted.
	bad := func(where, field string, val any, why string) {
		p = append(p, config.Problem(where+": "+field, val, why))
	}
	if f.Version != Version {
		bad("file", "version", f.Version, "this hedge reads version: 1")
	}
	if len(f.Intents) == 0 {
		bad("file", "intents", "[]", "at least one intent is needed")
	}
	for i, in := range f.Intents {
		where := fmt.Sprintf("intent %d", i+1)
		if in.Name != "" {
			where = fmt.Sprintf("intent %q", in.Name)
		}
		switch {
		case in.Name == "":
			bad(where, "name", `""`, "is required")
		case !nameRe.MatchString(in.Name):
			bad(where, "name", in.Name, "must be 1-64 lower-case letters, digits, '_', '.' or '-', starting with a letter")
		case in.Name == OutOfScopeLabel:
			bad(where, "name", in.Name, "is reserved for the out_of_scope examples")
		case s.byName[in.Name] != nil:
			bad(where, "name", in.Name, "is defined twice")
		}
		if len(in.Examples) < 2 {
			bad(where, "examples", len(in.Examples), "at least 2 example utterances are needed (10 or more work best)")
		}
		for j, e := range in.Examples {
			if strings.TrimSpace(e) == "" {
				bad(where, fmt.Sprintf("examples[%d]", j), `""`, "is empty")
			}
		}
		c := &compiled{spec: agent.IntentSpec{Name: in.Name, Threshold: in.Threshold, Volatile: in.Volatile, Escalate: agent.Escalate(in.Escalate)}}
		if in.Answer == "" && in.Action == nil {
			bad(where, "answer", `""`, "an intent needs an answer, an action, or both")
		}
		c.usesFacts = strings.Contains(in.Answer, "{{") || in.Action != nil && strings.Contains(in.Action.Payload, "{{")
		if in.Answer != "" {
			t, err := template.New(in.Name).Option("missingkey=zero").Parse(in.Answer)
			if err != nil {
				bad(where, "answer", fmt.Sprintf("%q", in.Answer), "is not a valid template: "+err.Error())
			}
			c.answer = t
		}
		if a := in.Action; a != nil {
			if a.Topic == "" || !topicRe.MatchString(a.Topic) {
				bad(where, "action.topic", fmt.Sprintf("%q", a.Topic), "must be an MQTT topic without wildcards")
			}
			if a.QoS > 2 {
				bad(where, "action.qos", a.QoS, "must be 0, 1 or 2")
			}
			t, err := template.New(in.Name + ".payload").Option("missingkey=zero").Parse(a.Payload)
			if err != nil {
				bad(where, "action.payload", fmt.Sprintf("%q", a.Payload), "is not a valid template: "+err.Error())
			}
			c.payload, c.action = t, a
			// An action's reply is a side effect's confirmation: served from
			// the cache it would confirm a publish that never happened.
			c.spec.Volatile = true
		}
		// Written so that .nan fails too (every comparison with NaN is false).
		if !(in.Threshold >= 0 && in.Threshold <= 1) {
			bad(where, "threshold", in.Threshold, "must be between 0 and 1 (0: the model's threshold)")
		}
		if in.CacheTTL != "" {
			d, err := time.ParseDuration(in.CacheTTL)
			if err != nil || d < 0 {
				bad(where, "cache_ttl", in.CacheTTL, "must be a duration such as 10m or 1h")
			}
			c.spec.CacheTTL = d
		}
		switch agent.Escalate(in.Escalate) {
		case "", agent.EscalateNever, agent.EscalateLowConfidence, agent.EscalateAlways:
		default:
			bad(where, "escalate", in.Escalate, "must be never, low_confidence or always")
		}
		if in.Name != "" && s.byName[in.Name] == nil {
			s.byName[in.Name] = c
		}
	}
	for j, e := range f.OutOfScope {
		if strings.TrimSpace(e) == "" {
			bad("out_of_scope", fmt.Sprintf("[%d]", j), `""`, "is empty")
		}
	}
	if len(p) > 0 {
		return nil, p
	}
	return s, nil
}

// Labels returns the class labels to train, in file order, with the
// out-of-scope class last when the file has out-of-scope examples; oos is
// that class's name or "".
func (s *Set) Labels() (labels []string, oos string) {
	for _, in := range s.File.Intents {
		labels = append(labels, in.Name)
	}
	if len(s.File.OutOfScope) > 0 {
		labels = append(labels, s.outOfScope)
		oos = s.outOfScope
	}
	return labels, oos
}

// Examples returns the training utterances with their label index into
// Labels().
func (s *Set) Examples() (texts []string, labels []int) {
	for i, in := range s.File.Intents {
		for _, e := range in.Examples {
			texts = append(texts, e)
			labels = append(labels, i)
		}
	}
	for _, e := range s.File.OutOfScope {
		texts = append(texts, e)
		labels = append(labels, len(s.File.Intents))
	}
	return texts, labels
}
