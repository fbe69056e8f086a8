package ollama

import (
	"encoding/json"
	"strings"
)

// instruct is the system prompt of a format request: the client's, then
// what the answer must be. No tier can be made to produce JSON here (the
// LLM samples without a grammar, the SLM's answers are templates, the
// cloud is asked in words), so the answer is checked after (formatted).
func (f *format) instruct(system string) string {
	rule := "Reply with one JSON value only: no prose before or after it, no code fence."
	if f.schema != nil {
		rule += " It must match this JSON schema: " + string(f.schema)
	}
	if system == "" {
		return rule
	}
	return system + "\n\n" + rule
}

// formatted is the content of a format request's reply and what became
// of it: the answer when it is JSON (a code fence around it taken off),
// "json"; otherwise the answer as one JSON string, "wrapped", so that the
// reply is JSON all the same and the text is not lost. A schema is asked
// for, not checked: the answer is JSON, not necessarily of that schema.
func formatted(answer string) (string, string) {
	if s := unfence(answer); json.Valid([]byte(s)) {
		return s, "json"
	}
	b, _ := json.Marshal(answer) // a string always encodes
	return string(b), "wrapped"
}

// unfence takes the Markdown code fence off s (```json … ```), which
// small models put around JSON.
func unfence(s string) string {
	s = strings.TrimSpace(s)
	inner, ok := strings.CutPrefix(s, "```")
	if !ok {
		return s
	}
	inner, ok = strings.CutSuffix(inner, "```")
	if !ok {
		return s
	}
	if nl := strings.IndexByte(inner, '\n'); nl >= 0 {
		inner = inner[nl+1:] // the info string: json
	}
	return strings.TrimSpace(inner)
}
