package slm

import (
	"math/rand/v2"
	"strings"
)

// MixNegatives returns n synthetic out-of-scope examples labelled oos: the
// first half of one training utterance joined to the second half of an
// utterance of another intent. Such chimeras share the vocabulary of the
// intents but mean none of them, which teaches the out-of-scope class that
// familiar words alone are not an intent — the commonest way real
// out-of-scope queries fool a bag-of-n-grams model. Deterministic in seed.
//
// With share > 0 the target is soft: share to each source intent and the
// rest to oos, since half an utterance is partly still its intent.
func MixNegatives(ex []Example, oos, n int, share float32, seed uint64) []Example {
	var in []Example
	for _, e := range ex {
		if e.Label != oos {
			in = append(in, e)
		}
	}
	if len(in) < 2 || n <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x0dd))
	out := make([]Example, 0, n)
	for tries := 0; len(out) < n && tries < 20*n; tries++ {
		a, b := in[rng.IntN(len(in))], in[rng.IntN(len(in))]
		if a.Label == b.Label {
			continue
		}
		wa, wb := strings.Fields(a.Text), strings.Fields(b.Text)
		if len(wa) < 2 || len(wb) < 2 {
			continue
		}
		text := strings.Join(wa[:len(wa)/2], " ") + " " + strings.Join(wb[len(wb)/2:], " ")
		e := Example{Text: text, Label: oos}
		if share > 0 {
			e.Soft = []LabelWeight{{oos, 1 - 2*share}, {a.Label, share}, {b.Label, share}}
		}
		out = append(out, e)
	}
	return out
}
