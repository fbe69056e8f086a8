package agent

import (
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		want    Query     // compared when code is ""
		code    ErrorCode // expected error code, "" for success
		id      string    // id expected in the error case
		message string    // substring of the error message
	}{
		{name: "json", in: `{"id":"1","text":"hello","prefer":"local","max_tokens":8,"stream":true}`,
			want: Query{ID: "1", Text: "hello", Prefer: PreferLocal, MaxTokens: 8, Stream: true}},
		{name: "json with newline", in: "{\"text\":\"hi\"}\r\n", want: Query{Text: "hi"}},
		{name: "json leading blanks", in: " \t{\"text\":\"hi\"}", want: Query{Text: "hi"}},
		{name: "json trailing blanks", in: "{\"text\":\"hi\"} \t ", want: Query{Text: "hi"}},
		{name: "all fields", in: `{"id":"x","text":"t","reply_to":"r/1","prefer":"cloud","conversation":"c","max_tokens":3}`,
			want: Query{ID: "x", Text: "t", ReplyTo: "r/1", Prefer: PreferCloud, Conversation: "c", MaxTokens: 3}},
		{name: "plain text", in: "what time is it\n", want: Query{Text: "what time is it"}},
		{name: "plain text keeps blanks", in: "  two  spaces ", want: Query{Text: "  two  spaces "}},
		{name: "plain text unicode", in: "¿qué hora es? 東京", want: Query{Text: "¿qué hora es? 東京"}},
		{name: "plain text with brackets", in: "[urgent] lights on", want: Query{Text: "[urgent] lights on"}},
		{name: "json escapes", in: `{"text":"a\u00e9\n<b>"}`, want: Query{Text: "aé\n<b>"}},
		{name: "empty line is empty text", in: "\n", want: Query{}},
		{name: "empty text stays for Validate", in: `{"id":"e","text":""}`, want: Query{ID: "e"}},
		{name: "bad prefer stays for Validate", in: `{"text":"x","prefer":"fast"}`, want: Query{Text: "x", Prefer: "fast"}},
		{name: "transport fields not settable", in: `{"text":"x","Transport":"mqtt"}`, code: CodeBadRequest, message: "unknown field"},

		{name: "too large", in: `{"id":"big","text":"` + strings.Repeat("a", 100) + `"}`, max: 50,
			code: CodeTooLarge, id: "big", message: "limit is 50"},
		{name: "too large plain", in: strings.Repeat("a", 51), max: 50, code: CodeTooLarge, message: "51 bytes"},
		{name: "exactly at limit", in: strings.Repeat("a", 50) + "\r\n", max: 50, want: Query{Text: strings.Repeat("a", 50)}},
		{name: "non-UTF-8 plain", in: "caf\xe9", code: CodeBadRequest, message: "UTF-8"},
		{name: "non-UTF-8 json", in: "{\"id\":\"u\",\"text\":\"caf\xe9\"}", code: CodeBadRequest, id: "u", message: "UTF-8"},
		{name: "truncated", in: `{"id":"t1","text":"hel`, code: CodeBadRequest, id: "t1", message: "truncated JSON"},
		{name: "truncated before id", in: `{"text":"hel`, code: CodeBadRequest, id: "", message: "truncated JSON"},
		{name: "syntax error", in: `{"id":"s1","text":"a",}`, code: CodeBadRequest, id: "s1", message: "syntax error"},
		{name: "text is a number", in: `{"id":"n","text":5}`, code: CodeBadRequest, id: "n", message: `field "text" must be a string, got number`},
		{name: "max_tokens is a string", in: `{"id":"m","text":"x","max_tokens":"x"}`, code: CodeBadRequest, id: "m", message: `field "max_tokens" must be an integer, got string`},
		{name: "max_tokens is fractional", in: `{"text":"x","max_tokens":1.5}`, code: CodeBadRequest, message: `field "max_tokens" must be an integer`},
		{name: "stream is a string", in: `{"text":"x","stream":"yes"}`, code: CodeBadRequest, message: `field "stream" must be a boolean`},
		{name: "prefer is a number", in: `{"text":"x","prefer":1}`, code: CodeBadRequest, message: `field "prefer" must be a string`},
		{name: "unknown field", in: `{"id":"u2","text":"x","temperature":0.2}`, code: CodeBadRequest, id: "u2", message: `unknown field "temperature"`},
		{name: "id is a number", in: `{"id":7,"text":"x"}`, code: CodeBadRequest, id: "", message: `field "id" must be a string`},
		{name: "data after object", in: `{"id":"d","text":"x"} trailing`, code: CodeBadRequest, id: "d", message: "data after"},
		{name: "two objects", in: `{"id":"d2","text":"x"}{"text":"y"}`, code: CodeBadRequest, id: "d2", message: "data after"},
		{name: "array instead of object", in: `[{"id":"a","text":"x"}]`, code: CodeBadRequest, message: "expected an object, got array"},
		{name: "empty array", in: `[]`, code: CodeBadRequest, message: "expected an object"},
		{name: "nested id ignored", in: `{"conversation":{"id":"inner"},"id":"outer"}`, code: CodeBadRequest, id: "outer", message: `field "conversation" must be a string`},
		{name: "id too long not echoed", in: `{"id":"` + strings.Repeat("i", 300) + `","text":5}`, code: CodeBadRequest, id: ""},
		{name: "duplicate id: the last, as decoded", in: `{"id":"first","text":"x","id":"second","bogus":1}`, code: CodeBadRequest, id: "second", message: "unknown field"},
		{name: "id in another letter case", in: `{"ID":"upper","text":5}`, code: CodeBadRequest, id: "upper", message: `field "text"`},
		{name: "null id keeps the id", in: `{"id":"kept","id":null,"text":5}`, code: CodeBadRequest, id: "kept"},
		{name: "json after a carriage return", in: "\r{\"id\":\"cr\",\"text\":\"hi\"}", want: Query{ID: "cr", Text: "hi"}},
		{name: "deep nesting", in: `{"text":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, code: CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, e := DecodeRequest([]byte(tc.in), tc.max)
			if tc.code == "" {
				if e != nil {
					t.Fatalf("DecodeRequest(%q) error %v, want %+v", tc.in, e, tc.want)
				}
				if !reflect.DeepEqual(q, tc.want) {
					t.Fatalf("DecodeRequest(%q) = %+v, want %+v", tc.in, q, tc.want)
				}
				return
			}
			if e == nil {
				t.Fatalf("DecodeRequest(%q) = %+v, want error %s", tc.in, q, tc.code)
			}
			if e.Code != tc.code {
				t.Errorf("code %s (%s), want %s", e.Code, e.Message, tc.code)
			}
			if q.ID != tc.id {
				t.Errorf("id %q, want %q", q.ID, tc.id)
			}
			if !strings.Contains(e.Message, tc.message) {
				t.Errorf("message %q does not contain %q", e.Message, tc.message)
			}
		})
	}
}

func TestMaxRequestBytesFitsEscapedText(t *testing.T) {
	// The worst case of JSON escaping: every byte of the text a control
	// character written as \u00XX (6 bytes). The limit must admit a request
	// whose text is at the text limit in ordinary non-ASCII escaping (\uXXXX
	// per 3-byte rune, ×2) plus its other fields.
	const maxText = 1024
	text := strings.Repeat("€", maxText/3) // 3 bytes each in UTF-8
	line := `{"id":"` + strings.Repeat("i", 256) + `","text":"` + strings.Repeat(`\u20ac`, maxText/3) + `"}`
	q, e := DecodeRequest([]byte(line), MaxRequestBytes(maxText))
	if e != nil {
		t.Fatalf("request with %d bytes of escaped text refused: %v", len(text), e)
	}
	if q.Text != text {
		t.Fatalf("text decoded wrong")
	}
	if e := q.Validate(Limits{MaxQueryBytes: maxText}); e != nil {
		t.Fatalf("Validate: %v", e)
	}
}
