package anonymize

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzAnonymize checks the two promises of the anonymizer on any text: the
// round trip restores the text exactly, and no detected value survives in
// the anonymized text where the detector would find it again.
func FuzzAnonymize(f *testing.F) {
	for _, c := range loadCorpus(f).Examples {
		f.Add(c.Text)
	}
	f.Add("template [EMAIL_1] goes to x@example.com and [EMAIL_")
	f.Add("[[EMAIL_1]] a@b.cd [EMAIL_1")
	f.Add("")
	a := testAnonymizer(f, nil)
	keep := testAnonymizer(f, keepPolicy)
	f.Fuzz(func(t *testing.T, text string) {
		r := a.Anonymize(text)
		if back := Restore(r.Text, r.Mapping); back != text {
			t.Fatalf("Restore(Anonymize(%q)) = %q (anonymized %q)", text, back, r.Text)
		}
		// A streamed answer restores the same, however it is cut.
		if utf8.ValidString(text) {
			rs := NewRestorer(r.Mapping)
			var b strings.Builder
			for i, piece := 0, 0; i < len(r.Text); i += piece {
				piece = 1 + i%5
				if i+piece > len(r.Text) {
					piece = len(r.Text) - i
				}
				b.WriteString(rs.Write(r.Text[i : i+piece]))
			}
			b.WriteString(rs.Flush())
			if b.String() != text {
				t.Fatalf("streamed restore of %q = %q", r.Text, b.String())
			}
		}
		values := map[string]bool{}
		for _, e := range r.Mapping {
			values[e.Value] = true
			if e.Value == "" {
				t.Fatalf("empty value in mapping of %q", text)
			}
		}
		for _, s := range a.Detect(r.Text) {
			if v := r.Text[s.Start:s.End]; values[v] {
				t.Fatalf("Anonymize(%q) = %q: %s %q was detected but is still there", text, r.Text, s.Kind, v)
			}
		}
		counts := 0
		for _, n := range r.Counts {
			counts += n
		}
		if counts != len(r.Mapping) {
			t.Fatalf("counts %v do not match the mapping of %d values", r.Counts, len(r.Mapping))
		}
		if utf8.ValidString(text) && !utf8.ValidString(r.Text) {
			t.Fatalf("Anonymize(%q) = %q, not valid UTF-8", text, r.Text)
		}
		// The same text under a policy that keeps some kinds on the device:
		// the same replacements, and private exactly when such a kind is in
		// it.
		rk := keep.Anonymize(text)
		if rk.Text != r.Text {
			t.Fatalf("the policy changed the anonymized text of %q: %q vs %q", text, rk.Text, r.Text)
		}
		var want []Kind
		for _, k := range Kinds() {
			if keepPolicy[k] == KeepLocal && r.Counts[k] > 0 {
				want = append(want, k)
			}
		}
		if !slices.Equal(rk.KeepLocal, want) || rk.Private() != (len(want) > 0) {
			t.Fatalf("Anonymize(%q) keeps %v local, want %v", text, rk.KeepLocal, want)
		}
	})
}

// keepPolicy keeps the kinds that identify a household on the device.
var keepPolicy = map[Kind]Action{Card: KeepLocal, IBAN: KeepLocal, Secret: KeepLocal, GPS: KeepLocal}

// FuzzRestorer restores arbitrary answers, cut into arbitrary pieces, with
// the mapping of a text that holds every kind of entity: an answer from
// the cloud may quote placeholders, mangle them, split them across chunks or
// invent new ones, and the streamed restore must always equal the restore
// of the whole answer.
func FuzzRestorer(f *testing.F) {
	a := testAnonymizer(f, nil)
	var all []string
	for _, c := range loadCorpus(f).Examples {
		all = append(all, c.Text)
	}
	m := a.Anonymize(strings.Join(all, " | ")).Mapping
	if len(m) < len(Kinds()) {
		f.Fatalf("the corpus gives a mapping of %d values, want one per kind at least", len(m))
	}
	f.Add("[EMAIL_1] wrote to [PERSON_2] about [LOCATION_1", []byte{3, 1, 4})
	f.Fuzz(func(t *testing.T, answer string, cuts []byte) {
		whole := Restore(answer, m)
		rs := NewRestorer(m)
		var b strings.Builder
		rest := answer
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(n, int(cuts[i])+1)
			}
			b.WriteString(rs.Write(rest[:n]))
			rest = rest[n:]
		}
		b.WriteString(rs.Flush())
		if b.String() != whole {
			t.Fatalf("streamed restore of %q cut at %v = %q, want %q", answer, cuts, b.String(), whole)
		}
		if !strings.Contains(answer, "[") && whole != answer {
			t.Fatalf("Restore(%q) changed an answer without placeholders: %q", answer, whole)
		}
		if utf8.ValidString(answer) && !utf8.ValidString(whole) {
			t.Fatalf("Restore(%q) = %q, not valid UTF-8", answer, whole)
		}
	})
}
