package llm

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStreamer(t *testing.T) {
	cases := []struct {
		name    string
		stops   []string
		pieces  []string
		want    string
		stopped bool
	}{
		{"plain", nil, []string{" Hello", ",", " world"}, "Hello, world", false},
		{"leading whitespace dropped", nil, []string{" ", "\n", " Hi"}, "Hi", false},
		{"stop inside one piece", []string{"User:"}, []string{"Yes.", " User: no"}, "Yes. ", true},
		{"stop across pieces", []string{"</end>"}, []string{"ok </", "en", "d> more"}, "ok ", true},
		{"false start of stop is released", []string{"ab"}, []string{"x", "a", "c"}, "xac", false},
		{"repeated prefix", []string{"ab"}, []string{"a", "a", "b"}, "a", true},
		{"utf8 split across byte tokens", nil, []string{"caf", "\xc3", "\xa9", "!"}, "café!", false},
		{"4-byte rune in pieces", nil, []string{"\xf0\x9f", "\x98", "\x80"}, "😀", false},
		{"invalid bytes become U+FFFD", nil, []string{"a\xff", "b"}, "a\uFFFDb", false},
		{"dangling lead byte at end", nil, []string{"x\xe2\x82"}, "x\uFFFD", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var chunks []string
			s := newStreamer(c.stops, func(x string) { chunks = append(chunks, x) })
			stopped := false
			for _, p := range c.pieces {
				if s.push([]byte(p)) {
					stopped = true
					break
				}
			}
			s.flush()
			if s.text() != c.want || stopped != c.stopped {
				t.Fatalf("text %q stopped %v, want %q %v", s.text(), stopped, c.want, c.stopped)
			}
			joined := strings.Join(chunks, "")
			if joined != c.want {
				t.Fatalf("emitted %q, want %q", joined, c.want)
			}
			for _, ch := range chunks {
				if !utf8.ValidString(ch) || ch == "" {
					t.Fatalf("chunk %q is empty or not UTF-8", ch)
				}
			}
		})
	}
}

func TestStreamerHoldsOnlyWhatMayStop(t *testing.T) {
	var got []string
	s := newStreamer([]string{"\nUser:"}, func(x string) { got = append(got, x) })
	s.push([]byte("Hello"))
	if len(got) != 1 || got[0] != "Hello" {
		t.Fatalf("text without a stop prefix is held back: %q", got)
	}
	s.push([]byte("\nUs"))
	if len(got) != 1 {
		t.Fatalf("a possible stop start was emitted: %q", got)
	}
	s.push([]byte("e it"))
	if strings.Join(got, "") != "Hello\nUse it" {
		t.Fatalf("released text = %q", strings.Join(got, ""))
	}
}
