// Package transformer is the SLM's second encoder: a BERT-family ONNX
// encoder (MiniLM, DistilBERT, MobileBERT…) that a user downloads with its
// tokenizer.json. Texts are WordPiece-tokenized, encoded, mean-pooled over
// the attention mask, and a small head trained on the intents file maps
// the pooled vector to intents. Encoder and head both run in ONNX Runtime.
package transformer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer is a WordPiece tokenizer read from a Hugging Face
// tokenizer.json with a BertNormalizer and a BertPreTokenizer.
type Tokenizer struct {
	vocab      map[string]int64
	unk        string
	prefix     string
	maxChars   int
	lowercase  bool
	stripAccts bool
	clean      bool
	chinese    bool
	cls, sep   int64
	pad        int64
}

// tokenizerJSON is the part of tokenizer.json hedge reads.
type tokenizerJSON struct {
	Normalizer *struct {
		Type               string `json:"type"`
		CleanText          *bool  `json:"clean_text"`
		HandleChineseChars *bool  `json:"handle_chinese_chars"`
		StripAccents       *bool  `json:"strip_accents"`
		Lowercase          *bool  `json:"lowercase"`
	} `json:"normalizer"`
	PreTokenizer *struct {
		Type string `json:"type"`
	} `json:"pre_tokenizer"`
	Model struct {
		Type                    string           `json:"type"`
		UnkToken                string           `json:"unk_token"`
		ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    int              `json:"max_input_chars_per_word"`
		Vocab                   map[string]int64 `json:"vocab"`
	} `json:"model"`
}

// LoadTokenizer reads a tokenizer.json.
func LoadTokenizer(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	t, err := ParseTokenizer(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// ParseTokenizer parses a tokenizer.json. Only WordPiece models are
// supported; the normalizer's options default as in BERT: lower-casing on,
// and accents stripped whenever lower-casing is on and strip_accents is
// not set.
func ParseTokenizer(data []byte) (*Tokenizer, error) {
	var j tokenizerJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("parse tokenizer: %w", err)
	}
	if j.Model.Type != "WordPiece" {
		return nil, fmt.Errorf("parse tokenizer: model type %q: only WordPiece (BERT-family) tokenizers are supported", j.Model.Type)
	}
	if len(j.Model.Vocab) == 0 {
		return nil, errors.New("parse tokenizer: the vocabulary is empty")
	}
	// An id is a row of the encoder's embedding table. ONNX Gather reads a
	// negative index from the end of the table: a wrong embedding, silently
	// (one past the end at least fails the query).
	for tok, id := range j.Model.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("parse tokenizer: token %q has the id %d; ids are rows of the embedding table, 0 or more", tok, id)
		}
	}
	t := &Tokenizer{vocab: j.Model.Vocab, unk: j.Model.UnkToken, prefix: "##", maxChars: j.Model.MaxInputCharsPerWord,
		lowercase: true, clean: true, chinese: true}
	if j.Model.ContinuingSubwordPrefix != nil {
		t.prefix = *j.Model.ContinuingSubwordPrefix
	}
	if t.maxChars <= 0 {
		t.maxChars = 100
	}
	if t.unk == "" {
		t.unk = "[UNK]"
	}
	if n := j.Normalizer; n != nil {
		if n.Type != "BertNormalizer" {
			return nil, fmt.Errorf("parse tokenizer: normalizer %q: only BertNormalizer is supported", n.Type)
		}
		if n.Lowercase != nil {
			t.lowercase = *n.Lowercase
		}
		if n.CleanText != nil {
			t.clean = *n.CleanText
		}
		if n.HandleChineseChars != nil {
			t.chinese = *n.HandleChineseChars
		}
	}
	t.stripAccts = t.lowercase
	if n := j.Normalizer; n != nil && n.StripAccents != nil {
		t.stripAccts = *n.StripAccents
	}
	if p := j.PreTokenizer; p != nil && p.Type != "BertPreTokenizer" && p.Type != "Whitespace" && p.Type != "WhitespaceSplit" {
		return nil, fmt.Errorf("parse tokenizer: pre-tokenizer %q: only BertPreTokenizer is supported", p.Type)
	}
	var ok bool
	for _, sp := range []struct {
		name string
		dst  *int64
	}{{"[CLS]", &t.cls}, {"[SEP]", &t.sep}, {"[PAD]", &t.pad}, {t.unk, new(int64)}} {
		if *sp.dst, ok = t.vocab[sp.name]; !ok {
			return nil, fmt.Errorf("parse tokenizer: the vocabulary has no %s token", sp.name)
		}
	}
	return t, nil
}

// Normalize applies the BertNormalizer: clean control characters, space
// out CJK ideographs, lower-case, strip accents ("Zürich" → "zurich").
func (t *Tokenizer) Normalize(text string) string {
	var b strings.Builder
	for _, r := range text {
		switch {
		case t.clean && (r == 0 || r == 0xfffd || isControl(r)):
			continue
		case t.clean && unicode.IsSpace(r):
			b.WriteByte(' ')
		case t.chinese && isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	s := b.String()
	if t.lowercase {
		s = strings.ToLower(s)
	}
	if t.stripAccts {
		var o strings.Builder
		for _, r := range norm.NFD.String(s) {
			if !unicode.Is(unicode.Mn, r) {
				o.WriteRune(r)
			}
		}
		s = o.String()
	}
	return s
}

// Tokens returns the WordPiece tokens of text, without [CLS] and [SEP].
func (t *Tokenizer) Tokens(text string) []string {
	var out []string
	for _, w := range preTokenize(t.Normalize(text)) {
		out = append(out, t.wordPiece(w)...)
	}
	return out
}

// Encode returns the ids of [CLS] tokens… [SEP], truncated to maxLen.
func (t *Tokenizer) Encode(text string, maxLen int) []int64 {
	toks := t.Tokens(text)
	if maxLen >= 2 && len(toks) > maxLen-2 {
		toks = toks[:maxLen-2]
	}
	ids := make([]int64, 0, len(toks)+2)
	ids = append(ids, t.cls)
	for _, s := range toks {
		ids = append(ids, t.vocab[s])
	}
	return append(ids, t.sep)
}

func (t *Tokenizer) wordPiece(w string) []string {
	r := []rune(w)
	if len(r) > t.maxChars {
		return []string{t.unk}
	}
	var out []string
	for start := 0; start < len(r); {
		end := len(r)
		found := ""
		for ; end > start; end-- {
			s := string(r[start:end])
			if start > 0 {
				s = t.prefix + s
			}
			if _, ok := t.vocab[s]; ok {
				found = s
				break
			}
		}
		if found == "" {
			return []string{t.unk}
		}
		out = append(out, found)
		start = end
	}
	return out
}

// preTokenize splits on white space and makes every punctuation character
// a word of its own, as BERT's pre-tokenizer does.
func preTokenize(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			cur = cur[:0]
		}
	}
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			flush()
		case isPunct(r):
			flush()
			out = append(out, string(r))
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return out
}

// isPunct is BERT's punctuation: every non-alphanumeric ASCII character
// (so "$" and "^" split too) and Unicode's P categories.
func isPunct(r rune) bool {
	if r >= 33 && r <= 47 || r >= 58 && r <= 64 || r >= 91 && r <= 96 || r >= 123 && r <= 126 {
		return true
	}
	return unicode.IsPunct(r)
}

func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.IsControl(r) || unicode.In(r, unicode.Cc, unicode.Cf)
}

func isCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F || r >= 0x2B740 && r <= 0x2B81F || r >= 0x2B820 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF || r >= 0x2F800 && r <= 0x2FA1F
}
