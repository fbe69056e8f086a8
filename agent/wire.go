package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxRequestBytes is the largest encoded request a transport should read for
// a text limit of maxText bytes. A JSON encoder may write any byte of the
// text as a six-byte escape (\u00XX for control characters; Go's
// encoding/json so writes <, > and &), and the other fields need room too:
// an id of 256 bytes, a reply_to of 1024 and a conversation like an id,
// escaped the same way, come to 9 KiB with the keys.
func MaxRequestBytes(maxText int) int { return 6*maxText + 10<<10 }

// DecodeRequest parses one request as it arrives on the wire: a JSON object
// in the shape of Query, or a plain line of text taken as {"text": line}.
// Decoding is strict: unknown fields, wrong types, trailing data, truncated
// JSON and non-UTF-8 bytes are a bad_request error naming the problem. The
// returned Query carries the request's id whenever one could be read, so the
// error reply can name it. The query is not validated against limits other
// than maxBytes; call Query.Validate for that.
func DecodeRequest(data []byte, maxBytes int) (Query, *Error) {
	data = bytes.TrimRight(data, "\r\n")
	if maxBytes > 0 && len(data) > maxBytes {
		return Query{ID: peekID(data)}, Errorf(CodeTooLarge, "request is %d bytes, the limit is %d", len(data), maxBytes)
	}
	if !utf8.Valid(data) {
		return Query{ID: peekID(data)}, Errorf(CodeBadRequest, "request is not valid UTF-8")
	}
	// Any JSON white space may come before an object (an MQTT payload
	// that starts with a newline is still JSON).
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		// A line that is a whole JSON array is a mistaken request, not a
		// question ("[urgent] lights on" is not valid JSON, so stays text).
		if len(trimmed) > 0 && trimmed[0] == '[' && json.Valid(trimmed) {
			return Query{}, Errorf(CodeBadRequest, "request is not a valid query: expected an object, got array")
		}
		return Query{Text: string(data)}, nil
	}
	var q Query
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return Query{ID: peekID(trimmed)}, Errorf(CodeBadRequest, "request is not a valid query: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Query{ID: q.ID}, Errorf(CodeBadRequest, "request has data after the JSON object")
	}
	return q, nil
}

// peekID returns the request's id if the bytes start a JSON object with a
// string id at its top level, else "". It reads the id as the decoder does
// (a key "id" in any letter case, the last one wins, null changes nothing),
// so an error reply names the id a successful decode would have; truncated
// or malformed JSON yields the id read before the damage. It never fails.
func peekID(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	id := ""
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			return id
		}
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return id
		}
		if !strings.EqualFold(key, "id") || string(v) == "null" {
			continue
		}
		if json.Unmarshal(v, &id) != nil || len(id) > 256 {
			// Not a string, or too long to echo: there is no id to name.
			return ""
		}
	}
	return id
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return fmt.Sprintf("expected an object, got %s", te.Value)
		}
		return fmt.Sprintf("field %q must be %s, got %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "int32":
		return "an integer"
	case "float64":
		return "a number"
	case "bool":
		return "a boolean"
	}
	return goKind
}
