package slm

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// fuzzFeaturizers are the featurizer shapes a saved model may carry: the
// default, a tiny table where every feature collides, and words only.
var fuzzFeaturizers = []Featurizer{
	DefaultFeaturizer(),
	{Buckets: 16, WordNgrams: 3, CharMin: 1, CharMax: 8, Seed: 7},
	{Buckets: 1 << 24, WordNgrams: 1, Seed: 1, SplitNorm: true},
}

// FuzzFeaturize feeds arbitrary text to the normalizer, the word splitter
// and the featurizer. Normalized text is lower case without combining marks
// and stays the same when normalized again; words are letters and digits;
// features are rows of the table (sorted, each once) with finite positive
// weights, the same every time, depending only on the words; with
// SplitNorm the word and character views add up to the whole.
func FuzzFeaturize(f *testing.F) {
	f.Add("Turn on the lights in Zürich, what's the time?")
	for _, fz := range fuzzFeaturizers {
		if err := fz.Validate(); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, text string) {
		norm := Normalize(text)
		if !utf8.ValidString(norm) || Normalize(norm) != norm {
			t.Fatalf("Normalize(%q) = %q, normalized again %q", text, norm, Normalize(norm))
		}
		for _, r := range norm {
			if unicode.Is(unicode.Mn, r) || unicode.ToLower(r) != r {
				t.Fatalf("Normalize(%q) = %q keeps %U", text, norm, r)
			}
		}
		words := Words(norm)
		for _, w := range words {
			if w == "" || strings.IndexFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) >= 0 {
				t.Fatalf("Words(%q) = %q", norm, words)
			}
		}
		for _, fz := range fuzzFeaturizers {
			all := fz.Featurize(text)
			checkFeatures(t, fz, text, all)
			if again := fz.Featurize(text); !equalFeatures(all, again, 0) {
				t.Fatalf("Featurize(%q) is not deterministic", text)
			}
			if joined := fz.Featurize(strings.Join(words, " ")); !equalFeatures(all, joined, 0) {
				t.Fatalf("Featurize(%q) differs from its words %q", text, words)
			}
			w, c := fz.FeaturizeView(text, ViewWords), fz.FeaturizeView(text, ViewChars)
			checkFeatures(t, fz, text, w)
			checkFeatures(t, fz, text, c)
			if !fz.SplitNorm {
				continue
			}
			if equalFeatures(w, c, 0) {
				// One group is empty: each view falls back to the whole.
				if !equalFeatures(all, w, 0) {
					t.Fatalf("Featurize(%q) = %v, its only view %v", text, all, w)
				}
			} else if sum := addFeatures(w, c); !equalFeatures(all, sum, 1e-5) {
				t.Fatalf("Featurize(%q) = %v, its views add up to %v", text, all, sum)
			}
		}
	})
}

func checkFeatures(t *testing.T, fz Featurizer, text string, x Features) {
	t.Helper()
	if len(x.Index) == 0 || len(x.Index) != len(x.Weight) {
		t.Fatalf("Featurize(%q): %d rows, %d weights", text, len(x.Index), len(x.Weight))
	}
	for i, r := range x.Index {
		w := float64(x.Weight[i])
		if r < 0 || int(r) >= fz.Buckets || i > 0 && r <= x.Index[i-1] || !(w > 0) || math.IsInf(w, 0) {
			t.Fatalf("Featurize(%q) with %d buckets: row %d weight %v at %d of %v", text, fz.Buckets, r, w, i, x.Index)
		}
	}
}

// equalFeatures reports whether a and b have the same rows and weights
// within a relative tolerance tol.
func equalFeatures(a, b Features, tol float64) bool {
	if !slices.Equal(a.Index, b.Index) || len(a.Weight) != len(b.Weight) {
		return false
	}
	for i := range a.Weight {
		x, y := float64(a.Weight[i]), float64(b.Weight[i])
		if math.Abs(x-y) > tol*math.Max(math.Abs(x), math.Abs(y)) {
			return false
		}
	}
	return true
}

// addFeatures sums two feature vectors row by row.
func addFeatures(a, b Features) Features {
	m := map[int32]float32{}
	for i, r := range a.Index {
		m[r] += a.Weight[i]
	}
	for i, r := range b.Index {
		m[r] += b.Weight[i]
	}
	var out Features
	for _, r := range slices.Sorted(maps.Keys(m)) {
		out.Index = append(out.Index, r)
		out.Weight = append(out.Weight, m[r])
	}
	return out
}
