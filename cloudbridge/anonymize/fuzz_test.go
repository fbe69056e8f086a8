package anonymize

import (
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
	})
}
