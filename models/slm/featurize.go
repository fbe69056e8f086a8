package slm

import (
	"fmt"
	"math"
	"slices"
)

// Featurizer turns a text into hashed sparse features: word n-grams and
// character n-grams of each word (with "<" and ">" marking the word's ends),
// each hashed into one of Buckets rows of the embedding table. Its
// parameters are saved with the model; a model is only valid with the
// featurizer it was trained with.
type Featurizer struct {
	Buckets int `json:"buckets"`
	// WordNgrams is the longest word n-gram (1: words only, 2: + bigrams).
	WordNgrams int `json:"word_ngrams"`
	// CharMin and CharMax bound the character n-grams; CharMax 0 turns
	// them off.
	CharMin int `json:"char_min"`
	CharMax int `json:"char_max"`
	// Seed is mixed into every hash so that two models hash differently.
	Seed uint64 `json:"seed"`
	// SplitNorm scales word n-grams and character n-grams separately
	// (each group by 1/sqrt of its size), so the many character n-grams do
	// not drown the few word features — as concatenating separately
	// normalized word and character TF-IDF vectors does.
	SplitNorm bool `json:"split_norm,omitempty"`
}

// DefaultFeaturizer is what hedge train uses unless told otherwise.
func DefaultFeaturizer() Featurizer {
	return Featurizer{Buckets: 1 << 18, WordNgrams: 2, CharMin: 3, CharMax: 5, Seed: 0x9e3779b97f4a7c15, SplitNorm: true}
}

// Validate reports a featurizer that cannot work.
func (f Featurizer) Validate() error {
	switch {
	case f.Buckets < 16 || f.Buckets > 1<<24:
		return fmt.Errorf("featurizer buckets %d: must be between 16 and %d", f.Buckets, 1<<24)
	case f.WordNgrams < 1 || f.WordNgrams > 3:
		return fmt.Errorf("featurizer word_ngrams %d: must be 1, 2 or 3", f.WordNgrams)
	case f.CharMax != 0 && (f.CharMin < 1 || f.CharMin > f.CharMax || f.CharMax > 8):
		return fmt.Errorf("featurizer char n-grams %d..%d: need 1 ≤ min ≤ max ≤ 8", f.CharMin, f.CharMax)
	}
	return nil
}

// Features is a text's sparse representation: rows of the embedding table
// and their weights, sorted by row, each row once. The weights sum the
// counts of the features that hash to the row, scaled by 1/sqrt(n) for n
// features in all, so that long and short texts have embeddings of similar
// size.
type Features struct {
	Index  []int32
	Weight []float32
}

// Kinds of features, mixed into the hash so that the word "the" and the
// character trigram "the" are different features.
const (
	kindWord   = 0x01
	kindBigram = 0x02
	kindChar   = 0x03
	kindTri    = 0x04
)

// View selects feature groups: an ensemble member trained on one view
// sees the world differently from the others, which is what makes an
// ensemble better than its members.
type View string

// The views. "" means ViewAll.
const (
	ViewAll   View = "all"
	ViewWords View = "words" // word n-grams only
	ViewChars View = "chars" // character n-grams only
)

// Featurize returns the features of text.
func (f Featurizer) Featurize(text string) Features { return f.FeaturizeView(text, ViewAll) }

// FeaturizeView returns the features of text in view v. With SplitNorm a
// view's features are exactly its part of Featurize's (same rows, same
// weights), so a member trained on a view needs no view at inference: the
// other group's rows are zero in its table.
func (f Featurizer) FeaturizeView(text string, v View) Features {
	words := Words(Normalize(text))
	idx := make([]int32, 0, 3*len(words)+1)
	var chars []int32
	for i, w := range words {
		idx = append(idx, f.bucket(kindWord, w, "", ""))
		if f.WordNgrams >= 2 && i > 0 {
			idx = append(idx, f.bucket(kindBigram, words[i-1], w, ""))
		}
		if f.WordNgrams >= 3 && i > 1 {
			idx = append(idx, f.bucket(kindTri, words[i-2], words[i-1], w))
		}
		if f.CharMax > 0 {
			chars = f.appendChars(chars, w)
		}
	}
	switch v {
	case ViewWords:
		chars = nil
	case ViewChars:
		if len(chars) > 0 {
			idx = idx[:0]
		}
	}
	if len(idx) == 0 && len(chars) == 0 {
		// An empty text still gets one feature so that every text has an
		// embedding; it is the same for all empty texts.
		idx = append(idx, f.bucket(kindWord, "", "", ""))
	}
	type fw struct {
		i int32
		w float32
	}
	all := make([]fw, 0, len(idx)+len(chars))
	if f.SplitNorm {
		if len(idx) > 0 {
			ws := float32(1 / math.Sqrt(float64(len(idx))))
			for _, i := range idx {
				all = append(all, fw{i, ws})
			}
		}
		if len(chars) > 0 {
			cs := float32(1 / math.Sqrt(float64(len(chars))))
			for _, i := range chars {
				all = append(all, fw{i, cs})
			}
		}
	} else {
		s := float32(1 / math.Sqrt(float64(len(idx)+len(chars))))
		for _, i := range append(idx, chars...) {
			all = append(all, fw{i, s})
		}
	}
	slices.SortFunc(all, func(a, b fw) int { return int(a.i) - int(b.i) })
	out := Features{Index: make([]int32, 0, len(all)), Weight: make([]float32, 0, len(all))}
	for _, x := range all {
		if n := len(out.Index); n > 0 && out.Index[n-1] == x.i {
			out.Weight[n-1] += x.w
			continue
		}
		out.Index = append(out.Index, x.i)
		out.Weight = append(out.Weight, x.w)
	}
	return out
}

func (f Featurizer) appendChars(idx []int32, w string) []int32 {
	r := make([]rune, 0, len(w)+2)
	r = append(r, '<')
	r = append(r, []rune(w)...)
	r = append(r, '>')
	for n := f.CharMin; n <= f.CharMax; n++ {
		for i := 0; i+n <= len(r); i++ {
			g := r[i : i+n]
			if n == 1 && (g[0] == '<' || g[0] == '>') {
				continue
			}
			// The whole bracketed word is the word feature already.
			if i == 0 && i+n == len(r) {
				continue
			}
			idx = append(idx, f.bucketRunes(g))
		}
	}
	return idx
}

// FNV-1a, 64 bit: simple, fast, and stable across versions and machines,
// which a saved model needs.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (f Featurizer) bucket(kind byte, a, b, c string) int32 {
	h := uint64(fnvOffset) ^ f.Seed
	h = (h ^ uint64(kind)) * fnvPrime
	for i := 0; i < len(a); i++ {
		h = (h ^ uint64(a[i])) * fnvPrime
	}
	if b != "" {
		h = (h ^ 0xff) * fnvPrime
		for i := 0; i < len(b); i++ {
			h = (h ^ uint64(b[i])) * fnvPrime
		}
	}
	if c != "" {
		h = (h ^ 0xfe) * fnvPrime
		for i := 0; i < len(c); i++ {
			h = (h ^ uint64(c[i])) * fnvPrime
		}
	}
	return f.reduce(h)
}

func (f Featurizer) bucketRunes(g []rune) int32 {
	h := uint64(fnvOffset) ^ f.Seed
	h = (h ^ kindChar) * fnvPrime
	for _, r := range g {
		for r > 0 {
			h = (h ^ uint64(r&0xff)) * fnvPrime
			r >>= 8
		}
		h = (h ^ 0xfd) * fnvPrime
	}
	return f.reduce(h)
}

func (f Featurizer) reduce(h uint64) int32 {
	// Finalize (splitmix64's mixer) so that the low bits used by the modulo
	// depend on every input byte.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return int32(h % uint64(f.Buckets))
}
