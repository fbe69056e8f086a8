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
// a text limit of maxText bytes: JSON escaping of non-ASCII text can triple
// it, and the other fields need room too.
func MaxRequestBytes(maxText int) int { return 4*maxText + 4096 }

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
	trimmed := bytes.TrimLeft(data, " \t")
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
// string id at its top level, else "". It reads tokens only as far as the
// id, so truncated or malformed JSON after the id still yields it. It never
// fails.
func peekID(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			return ""
		}
		if key != "id" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return ""
			}
			continue
		}
		var id string
		if dec.Decode(&id) != nil || !utf8.ValidString(id) || len(id) > 256 {
			return ""
		}
		return id
	}
	return ""
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
