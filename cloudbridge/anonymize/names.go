package anonymize

import (
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// nameList finds the names of one kind as whole words, ignoring case and
// allowing any run of white space between a name's words. ASCII names are
// found with plain string searches in an ASCII-lower-cased copy of the text
// (same byte offsets), which is many times faster than a case-insensitive
// regexp alternation; names with other letters use such a regexp, for
// Unicode case folding (Zoë, ZOË).
type nameList struct {
	kind  Kind
	ascii [][]string     // each name as lower-case words
	other *regexp.Regexp // nil when every name is ASCII
}

func compileNames(k Kind, names []string) *nameList {
	l := &nameList{kind: k}
	seen := map[string]bool{}
	var others []string
	for _, n := range names {
		words := strings.Fields(n)
		if len(words) == 0 {
			continue
		}
		key := strings.ToLower(strings.Join(words, " "))
		if seen[key] {
			continue
		}
		seen[key] = true
		if isASCII(key) {
			l.ascii = append(l.ascii, strings.Fields(key))
			continue
		}
		for i, w := range words {
			words[i] = regexp.QuoteMeta(w)
		}
		others = append(others, strings.Join(words, `\s+`))
	}
	if len(others) > 0 {
		// Longest first, so that "Anna Maria" wins over "Anna".
		sort.SliceStable(others, func(i, j int) bool { return len(others[i]) > len(others[j]) })
		l.other = regexp.MustCompile(`(?i)(?:` + strings.Join(others, "|") + `)`)
	}
	if len(l.ascii) == 0 && l.other == nil {
		return nil
	}
	return l
}

// find returns the [start, end) of every whole-word occurrence; folded is
// foldASCII(text). Occurrences of different names may overlap; Detect keeps
// the longest.
func (l *nameList) find(text, folded string) [][2]int {
	var out [][2]int
	for _, words := range l.ascii {
		first := words[0]
		for from := 0; from < len(folded); {
			i := strings.Index(folded[from:], first)
			if i < 0 {
				break
			}
			start := from + i
			from = start + 1
			end, ok := matchRest(folded, start+len(first), words[1:])
			if ok && wordBounded(text, start, end) {
				out = append(out, [2]int{start, end})
			}
		}
	}
	if l.other != nil {
		for _, m := range l.other.FindAllStringIndex(text, -1) {
			if wordBounded(text, m[0], m[1]) {
				out = append(out, [2]int{m[0], m[1]})
			}
		}
	}
	return out
}

// matchRest matches the remaining words of a name at pos, each after a run
// of white space; it returns the end of the match.
func matchRest(folded string, pos int, words []string) (int, bool) {
	for _, w := range words {
		n := pos
		for n < len(folded) {
			r, size := utf8.DecodeRuneInString(folded[n:])
			if !unicode.IsSpace(r) {
				break
			}
			n += size
		}
		if n == pos || !strings.HasPrefix(folded[n:], w) {
			return 0, false
		}
		pos = n + len(w)
	}
	return pos, true
}

// foldASCII lower-cases the ASCII letters of s and leaves every other byte,
// so offsets in the result are offsets in s.
func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
