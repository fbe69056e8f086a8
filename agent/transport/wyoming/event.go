package wyoming

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ProtocolVersion is the Wyoming version hedge puts in the headers it
// writes: the event framing and the intent events of that release.
const ProtocolVersion = "1.5.4"

// event is one Wyoming event as read: its type and its data, the header's
// inline data with the data section merged on top. A payload is read and
// dropped: no event hedge answers carries one.
type event struct {
	Type string
	Data map[string]json.RawMessage
}

// header is the JSON line that starts every event.
type header struct {
	Type          string                     `json:"type"`
	Data          map[string]json.RawMessage `json:"data,omitempty"`
	DataLength    int64                      `json:"data_length,omitempty"`
	PayloadLength int64                      `json:"payload_length,omitempty"`
	Version       string                     `json:"version,omitempty"`
}

// errFraming is wrapped by readEvent when the stream cannot be read on:
// the connection has lost the event boundaries, or the peer is gone.
var errFraming = errors.New("wyoming stream unreadable")

// badEvent is one event that was read to its end but cannot be used: the
// stream is still in step and the next event can be read.
type badEvent struct {
	code string
	msg  string
}

func (e *badEvent) Error() string { return e.msg }

// limits bound what one event may be.
type limits struct {
	header  int   // the header line, inline data included, without "\n"
	data    int64 // the data section
	payload int64 // the payload, discarded as it is read
}

// readEvent reads one event. A *badEvent error leaves the stream at the
// start of the next event; any other error (io.EOF at a clean end, or one
// wrapping errFraming) ends the connection.
func readEvent(r *bufio.Reader, l limits) (event, error) {
	line, err := readLine(r, l.header)
	if err != nil {
		return event{}, err
	}
	var h header
	if err := json.Unmarshal(line, &h); err != nil {
		return event{}, &badEvent{"bad_request", "event header is not a JSON object: " + err.Error()}
	}
	if h.DataLength < 0 || h.PayloadLength < 0 {
		// Nothing was read beyond the line, so the next line is the next event.
		return event{}, &badEvent{"bad_request", fmt.Sprintf("event %q: negative data_length or payload_length", h.Type)}
	}
	bad := sectionError(h, l)
	if bad != nil {
		if err := discard(r, h.DataLength); err != nil {
			return event{}, err
		}
	} else if err := mergeData(r, &h); err != nil && !errors.As(err, &bad) {
		return event{}, err
	}
	if err := discard(r, h.PayloadLength); err != nil {
		return event{}, err
	}
	if bad != nil {
		return event{}, bad
	}
	if h.Type == "" {
		return event{}, &badEvent{"bad_request", "event header has no type"}
	}
	return event{Type: h.Type, Data: h.Data}, nil
}

// sectionError says whether the header's sections are over the limits.
func sectionError(h header, l limits) *badEvent {
	switch {
	case h.DataLength > l.data:
		return &badEvent{"too_large", fmt.Sprintf("event %q: data_length %d is over the limit of %d bytes; the data was discarded", h.Type, h.DataLength, l.data)}
	case h.PayloadLength > l.payload:
		return &badEvent{"too_large", fmt.Sprintf("event %q: payload_length %d is over the limit of %d bytes; the payload was discarded", h.Type, h.PayloadLength, l.payload)}
	}
	return nil
}

// mergeData reads the data section and merges it over the header's inline
// data. A read failure is returned as a framing error, bad JSON as a
// *badEvent (the section was read whole, so the stream is in step).
func mergeData(r *bufio.Reader, h *header) error {
	if h.DataLength == 0 {
		return nil
	}
	buf := make([]byte, h.DataLength)
	if _, err := io.ReadFull(r, buf); err != nil {
		return fmt.Errorf("%w: data section: %v", errFraming, err)
	}
	var extra map[string]json.RawMessage
	if err := json.Unmarshal(buf, &extra); err != nil {
		return &badEvent{"bad_request", fmt.Sprintf("event %q: data section is not a JSON object", h.Type)}
	}
	// A data section of null adds nothing.
	if h.Data == nil {
		h.Data = extra
		return nil
	}
	for k, v := range extra {
		h.Data[k] = v
	}
	return nil
}

// readLine reads one header line without its "\n". A line over max is
// consumed to its end and reported as a *badEvent: the next line is the
// next event's header.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		frag, err := r.ReadSlice('\n')
		n := len(frag)
		if err == nil {
			n-- // the newline is not the header's
		}
		if !tooLong && len(line)+n > max {
			tooLong, line = true, nil
		}
		if !tooLong {
			line = append(line, frag...)
		}
		switch {
		case err == nil && tooLong:
			return nil, &badEvent{"too_large", fmt.Sprintf("event header is longer than the limit of %d bytes; it was discarded", max)}
		case err == nil:
			return bytes.TrimRight(line, "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) == 0 && !tooLong:
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: header: %v", errFraming, err)
	}
}

// discard reads and drops n bytes.
func discard(r *bufio.Reader, n int64) error {
	if n == 0 {
		return nil
	}
	if _, err := io.CopyN(io.Discard, r, n); err != nil {
		return fmt.Errorf("%w: %v", errFraming, err)
	}
	return nil
}

// encodeEvent returns the bytes of one event: a header line with the
// version and data_length, then data as its data section. Data goes in the
// data section, not inline: every Wyoming reader since the first reads it
// there.
func encodeEvent(typ string, data any) ([]byte, error) {
	h := header{Type: typ, Version: ProtocolVersion}
	var body []byte
	if data != nil {
		var err error
		if body, err = marshal(data); err != nil {
			return nil, fmt.Errorf("encode %s event: %w", typ, err)
		}
		h.DataLength = int64(len(body))
	}
	line, err := marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", typ, err)
	}
	return append(append(line, '\n'), body...), nil
}

// marshal encodes v as JSON without HTML escaping (answers are text for
// people, not HTML) and without the encoder's trailing newline.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
