package intents

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// intentProblemStart is how every intents problem begins: the file, an
// intent by number or name, or the out-of-scope list.
var intentProblemStart = regexp.MustCompile(`^(not a valid intents file: |file: |intent [0-9]+: |intent "(\\.|[^"\\])*": |out_of_scope: )`)

// FuzzParse feeds arbitrary documents to the intents loader. It never
// panics; a refusal lists problems that each name the intent and field
// they are about, one per line; an accepted file has named intents with
// thresholds in [0, 1], labels and examples that agree, and reads back the
// same once written out.
func FuzzParse(f *testing.F) {
	f.Add(Starter())
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			var p Problems
			if !errors.As(err, &p) || len(p) == 0 {
				t.Fatalf("Parse(%q) error %T %v, want Problems", data, err, err)
			}
			for _, m := range p {
				if !intentProblemStart.MatchString(m) || strings.ContainsAny(m, "\n\r") || !utf8.ValidString(m) {
					t.Fatalf("Parse(%q): problem %q names no intent or field, or is not one line of text", data, m)
				}
			}
			return
		}
		if sum := sha256.Sum256(data); s.Hash != hex.EncodeToString(sum[:]) {
			t.Fatalf("Parse(%q): hash %s", data, s.Hash)
		}
		labels, oos := s.Labels()
		texts, ys := s.Examples()
		if len(texts) != len(ys) || (oos != "") != (len(s.File.OutOfScope) > 0) {
			t.Fatalf("Parse(%q): %d examples, %d labels, out of scope %q", data, len(texts), len(ys), oos)
		}
		for i, y := range ys {
			if y < 0 || y >= len(labels) || strings.TrimSpace(texts[i]) == "" {
				t.Fatalf("Parse(%q): example %q has label %d of %d", data, texts[i], y, len(labels))
			}
		}
		sk := NewSkills(s, nil, nil)
		for _, in := range s.File.Intents {
			spec, ok := sk.Spec(in.Name)
			if !ok || !nameRe.MatchString(in.Name) || len(in.Examples) < 2 {
				t.Fatalf("Parse(%q) accepted intent %+v", data, in)
			}
			if th := spec.Threshold; math.IsNaN(th) || th < 0 || th > 1 || spec.CacheTTL < 0 {
				t.Fatalf("Parse(%q): intent %s threshold %v, cache ttl %v", data, in.Name, th, spec.CacheTTL)
			}
			if in.Action != nil && (!spec.Volatile || in.Action.QoS > 2 || strings.ContainsAny(in.Action.Topic, "+#\x00")) {
				t.Fatalf("Parse(%q): intent %s action %+v, volatile %v", data, in.Name, in.Action, spec.Volatile)
			}
		}
		out, err := yaml.Marshal(s.File)
		if err != nil {
			t.Fatalf("marshal %+v: %v", s.File, err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) accepted, but the file written out is refused:\n%s\n%v", data, out, err)
		}
		if out2, _ := yaml.Marshal(back.File); !bytes.Equal(out, out2) {
			t.Fatalf("Parse(%q): file does not read back:\n%s\nthen\n%s", data, out, out2)
		}
		if again, _ := Parse(data); again == nil || !bytes.Equal([]byte(again.Hash), []byte(s.Hash)) {
			t.Fatalf("Parse(%q) is not deterministic", data)
		}
	})
}
