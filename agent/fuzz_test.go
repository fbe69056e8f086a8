package agent

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// fuzzLimits are the limits the decode fuzzers validate against: small, so
// that the fuzzer reaches too_large without megabyte inputs.
var fuzzLimits = Limits{MaxQueryBytes: 256, MaxTokens: 4096}

// FuzzDecodeRequest feeds arbitrary lines to the socket and MQTT request
// decoder, then validates as Handle does. Whatever the bytes, the outcome is
// an error reply a client can read (bad_request or too_large, with the
// request's id whenever Go's own decoder reads one) or a query whose text is
// valid UTF-8, not blank and within the limit.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"id":"1","text":"hello"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// No limit (the socket reads the id of an over-long line so), the
		// limit of the fuzz limits, and one most inputs exceed.
		for _, max := range []int{0, MaxRequestBytes(fuzzLimits.MaxQueryBytes), 64} {
			q, e := DecodeRequest(data, max)
			q2, e2 := DecodeRequest(data, max)
			if !reflect.DeepEqual(q, q2) || (e == nil) != (e2 == nil) || e != nil && *e != *e2 {
				t.Fatalf("DecodeRequest(%q) is not deterministic: %+v %v, then %+v %v", data, q, e, q2, e2)
			}
			line := bytes.TrimRight(data, "\r\n")
			if want, ok := goDecoderID(line); ok && q.ID != want {
				t.Fatalf("DecodeRequest(%q) id %q, Go's decoder reads %q (error %v)", data, q.ID, want, e)
			}
			if e != nil {
				checkDecodeError(t, data, max, q, e)
				continue
			}
			if max > 0 && len(line) > max {
				t.Fatalf("DecodeRequest(%q, %d) accepted %d bytes", data, max, len(line))
			}
			for _, s := range []string{q.ID, q.Text, q.ReplyTo, q.Conversation, string(q.Prefer)} {
				if !utf8.ValidString(s) {
					t.Fatalf("DecodeRequest(%q) = %+v: a field is not valid UTF-8", data, q)
				}
			}
			if trimmed := bytes.TrimLeft(line, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
				// A text line is the question, byte for byte.
				if !reflect.DeepEqual(q, Query{Text: string(line)}) {
					t.Fatalf("text line %q decoded to %+v", data, q)
				}
			}
			if v := q.Validate(fuzzLimits); v != nil {
				if v.Code != CodeBadRequest && v.Code != CodeTooLarge {
					t.Fatalf("Validate(%+v) = %v, want bad_request or too_large", q, v)
				}
				continue
			}
			if isBlank(q.Text) || len(q.Text) > fuzzLimits.MaxQueryBytes || len(q.ID) > 256 || !q.Prefer.Valid() ||
				q.MaxTokens < 0 || q.MaxTokens > fuzzLimits.MaxTokens {
				t.Fatalf("Validate accepted %+v", q)
			}
		}
	})
}

// checkDecodeError asserts what an error reply of DecodeRequest may be.
func checkDecodeError(t *testing.T, data []byte, max int, q Query, e *Error) {
	t.Helper()
	tooLarge := max > 0 && len(bytes.TrimRight(data, "\r\n")) > max
	switch {
	case tooLarge && e.Code != CodeTooLarge, !tooLarge && e.Code != CodeBadRequest:
		t.Fatalf("DecodeRequest(%q, %d) = %v; too large: %v", data, max, e, tooLarge)
	case e.Message == "" || !utf8.ValidString(e.Message):
		t.Fatalf("DecodeRequest(%q) error message %q", data, e.Message)
	case !reflect.DeepEqual(q, Query{ID: q.ID}):
		t.Fatalf("DecodeRequest(%q) failed with %v but returned %+v; only the id belongs in an error", data, e, q)
	case !utf8.ValidString(q.ID) || len(q.ID) > 256:
		t.Fatalf("DecodeRequest(%q) echoes the id %q", data, q.ID)
	}
	reply, err := json.Marshal(ErrorAnswer(q.ID, e))
	if err != nil {
		t.Fatalf("error reply for %q: %v", data, err)
	}
	var back Answer
	if err := json.Unmarshal(reply, &back); err != nil || back.ID != q.ID || back.Error == nil || *back.Error != *e {
		t.Fatalf("error reply %s does not read back: %+v %v", reply, back, err)
	}
}

// goDecoderID returns the id encoding/json reads into Query.ID from a
// well-formed UTF-8 JSON object when it is one DecodeRequest may echo; ok
// is false when there is none.
func goDecoderID(line []byte) (id string, ok bool) {
	if !utf8.Valid(line) || !json.Valid(line) {
		return "", false
	}
	var probe struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(line, &probe) != nil || len(probe.ID) > 256 {
		return "", false
	}
	return probe.ID, true
}

// FuzzRequestRoundTrip encodes queries the way clients do (encoding/json,
// which escapes <, > and & and control characters as six bytes each) and
// decodes them: every query Validate accepts must come back unchanged
// within MaxRequestBytes of its text limit.
func FuzzRequestRoundTrip(f *testing.F) {
	f.Add("1", "what time is it", "", "", "", 0, false)
	f.Fuzz(func(t *testing.T, id, text, replyTo, prefer, conversation string, maxTokens int, stream bool) {
		q := Query{ID: id, Text: text, ReplyTo: replyTo, Prefer: Prefer(prefer), Conversation: conversation, MaxTokens: maxTokens, Stream: stream}
		// The tightest limit that admits the text.
		l := Limits{MaxQueryBytes: max(len(text), 1), MaxTokens: max(maxTokens, 1)}
		if q.Validate(l) != nil || len(conversation) > 256 {
			return
		}
		line, err := json.Marshal(q)
		if err != nil {
			t.Fatalf("encode %+v: %v", q, err)
		}
		got, e := DecodeRequest(append(line, '\n'), MaxRequestBytes(l.MaxQueryBytes))
		if e != nil {
			t.Fatalf("DecodeRequest(%s) of a valid query: %v", line, e)
		}
		if !reflect.DeepEqual(got, q) {
			t.Fatalf("round trip of %+v gave %+v", q, got)
		}
	})
}
