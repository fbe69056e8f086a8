package wyoming

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

// FuzzReadEvent: any bytes are read as events, bad ones, or the end of the
// stream, without a panic, without holding more than the limits, and
// always making progress.
func FuzzReadEvent(f *testing.F) {
	for _, s := range []string{
		`{"type":"describe"}` + "\n",
		`{"type":"transcript","data":{"text":"hi"}}` + "\n",
		`{"type":"transcript","data_length":13}` + "\n" + `{"text":"hi"}`,
		`{"type":"audio-chunk","payload_length":4}` + "\n\x00\x01\x02\x03",
		`{"type":"x","data_length":-1}` + "\n",
		"not json\n",
		`{"type":"x","data_length":99999999}` + "\n",
		`{"type":"transcript","data":{"text":"a"},"data_length":13}` + "\n" + `{"text":"b"}`,
	} {
		f.Add([]byte(s))
	}
	l := limits{header: 256, data: 128, payload: 64}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(b), 16)
		for i := 0; i <= len(b); i++ {
			ev, err := readEvent(r, l)
			var bad *badEvent
			switch {
			case err == nil:
				if ev.Type == "" {
					t.Fatal("an event without a type")
				}
			case errors.As(err, &bad):
				if bad.code == "" || bad.msg == "" {
					t.Fatalf("bad event without code or text: %+v", bad)
				}
			default:
				return // end of stream or lost framing
			}
		}
		t.Fatal("readEvent made no progress")
	})
}
