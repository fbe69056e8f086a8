package transformer

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hedge-edge/hedge/models/slm/transformer/testbert"
)

// FuzzTokenizer tokenizes arbitrary text with the fixture's tokenizer and
// with whatever tokenizer.json the fuzzer makes up. A tokenizer.json is
// refused with a parse error, or gives a tokenizer whose ids are rows of
// the encoder's embedding table (0 or more, never counted from the end). Every
// encoding is [CLS] tokens… [SEP], within maxLen, each id the vocabulary's
// id of its token, at most one token per character, and the same each time.
func FuzzTokenizer(f *testing.F) {
	fixture, err := ParseTokenizer(testbert.TokenizerJSON())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(testbert.TokenizerJSON(), "Turn on the lights in Zürich!", uint16(16))
	f.Fuzz(func(t *testing.T, tokenizerJSON []byte, text string, maxLen uint16) {
		checkEncode(t, fixture, text, int(maxLen%600))
		tok, err := ParseTokenizer(tokenizerJSON)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "parse tokenizer: ") {
				t.Fatalf("ParseTokenizer(%q): error %q", tokenizerJSON, err)
			}
			return
		}
		for token, id := range tok.vocab {
			if id < 0 {
				t.Fatalf("ParseTokenizer(%q) accepted the id %d of %q", tokenizerJSON, id, token)
			}
		}
		checkEncode(t, tok, text, int(maxLen%600))
	})
}

func checkEncode(t *testing.T, tok *Tokenizer, text string, maxLen int) {
	t.Helper()
	toks := tok.Tokens(text)
	if again := tok.Tokens(text); strings.Join(again, "\x00") != strings.Join(toks, "\x00") {
		t.Fatalf("Tokens(%q) is not deterministic: %q then %q", text, toks, again)
	}
	if n := utf8.RuneCountInString(tok.Normalize(text)); len(toks) > n {
		t.Fatalf("Tokens(%q) = %d tokens for %d characters", text, len(toks), n)
	}
	ids := tok.Encode(text, maxLen)
	want := len(toks)
	if maxLen >= 2 {
		want = min(want, maxLen-2)
	}
	if len(ids) != want+2 || ids[0] != tok.cls || ids[len(ids)-1] != tok.sep {
		t.Fatalf("Encode(%q, %d) = %v for tokens %q", text, maxLen, ids, toks)
	}
	for i, s := range toks[:want] {
		id, ok := tok.vocab[s]
		if !ok || ids[i+1] != id {
			t.Fatalf("Encode(%q): token %q has id %d, the vocabulary %d (%v)", text, s, ids[i+1], id, ok)
		}
	}
}
