package llm

import (
	"strings"
	"unicode/utf8"
)

// streamer turns the byte pieces of generated tokens into text for emit:
// it never emits half a UTF-8 character (byte tokens split them), never
// emits text that may turn out to be the start of a stop string, drops the
// leading whitespace of an answer, and cuts the text at the first stop
// string. It is pure logic, tested without a model.
type streamer struct {
	stops   []string
	emit    func(string)
	pending []byte
	out     strings.Builder
	started bool
	stopped bool
}

// leadingSpace is what the streamer drops at an answer's start.
const leadingSpace = " \t\r\n"

func newStreamer(stops []string, emit func(string)) *streamer {
	s := &streamer{emit: emit}
	for _, st := range stops {
		if st != "" {
			s.stops = append(s.stops, st)
		}
	}
	return s
}

// push adds the bytes of one token; it reports whether a stop string ended
// the answer.
func (s *streamer) push(b []byte) bool {
	if s.stopped {
		return true
	}
	s.pending = append(s.pending, b...)
	if !s.started {
		trimmed := strings.TrimLeft(string(s.pending), leadingSpace)
		s.pending = append(s.pending[:0], trimmed...)
		if len(s.pending) == 0 {
			return false
		}
		s.started = true
	}
	for _, st := range s.stops {
		if i := strings.Index(string(s.pending), st); i >= 0 {
			s.send(s.pending[:i], true)
			s.pending = s.pending[:0]
			s.stopped = true
			return true
		}
	}
	cut := len(s.pending) - s.holdStop()
	cut = completeRunes(s.pending[:cut])
	if cut > 0 {
		s.send(s.pending[:cut], false)
		s.pending = append(s.pending[:0], s.pending[cut:]...)
	}
	return false
}

// flush emits whatever is held back (the answer is over).
func (s *streamer) flush() {
	if !s.stopped && len(s.pending) > 0 {
		s.send(s.pending, true)
	}
	s.pending = s.pending[:0]
}

// text is everything emitted so far.
func (s *streamer) text() string { return s.out.String() }

func (s *streamer) send(b []byte, final bool) {
	if len(b) == 0 {
		return
	}
	t := string(b)
	if final || !utf8.ValidString(t) {
		// Bytes that are not UTF-8 at all (a model may produce any byte
		// token) become U+FFFD so that every reply is valid JSON text.
		t = strings.ToValidUTF8(t, "\uFFFD")
	}
	s.out.WriteString(t)
	if s.emit != nil {
		s.emit(t)
	}
}

// holdStop is the length of the longest suffix of pending that is a proper
// prefix of a stop string.
func (s *streamer) holdStop() int {
	best := 0
	for _, st := range s.stops {
		for l := min(len(st)-1, len(s.pending)); l > best; l-- {
			if strings.HasSuffix(string(s.pending), st[:l]) {
				best = l
				break
			}
		}
	}
	return best
}

// completeRunes returns the length of b without a trailing incomplete UTF-8
// sequence (one that later bytes may complete).
func completeRunes(b []byte) int {
	for back := 1; back <= 3 && back <= len(b); back++ {
		c := b[len(b)-back]
		if c < 0x80 {
			return len(b) // ASCII: complete
		}
		if c >= 0xC0 { // a lead byte: is its sequence complete?
			if utf8.FullRune(b[len(b)-back:]) {
				return len(b)
			}
			return len(b) - back
		}
	}
	return len(b)
}
