package slm

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Normalize folds text the way both encoders see it: lower case, accents
// stripped ("Zürich" → "zurich"), so that a user who types without accents
// meets the same features as the examples that had them.
func Normalize(text string) string {
	var b strings.Builder
	b.Grow(len(text))
	// NFD splits "ü" into "u" + a combining diaeresis (category Mn), which
	// is then dropped. Invalid bytes become U+FFFD first: NFD leaves the
	// character after an invalid byte composed ("\xf7ӳ" kept its "ӳ"), so
	// the same word would have other features than without the byte.
	for _, r := range norm.NFD.String(strings.ToValidUTF8(text, "\ufffd")) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// Words splits normalized text into words: runs of letters and digits.
// Apostrophes inside a word are dropped ("what's" → "whats") so that
// contractions typed with or without them meet.
func Words(text string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	for _, r := range text {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			cur = append(cur, r)
		case r == '\'' || r == '’':
			// inside a word: skip; elsewhere it separates nothing.
		default:
			flush()
		}
	}
	flush()
	return words
}
