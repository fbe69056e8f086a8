package ollama

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseKeepAlive(t *testing.T) {
	for raw, want := range map[string]time.Duration{
		`0`: 0, `"0"`: 0, `"0s"`: 0, `-1`: -time.Second, `"-1"`: -time.Second, `"5m"`: 5 * time.Minute, `300`: 5 * time.Minute, `1.5`: 1500 * time.Millisecond,
	} {
		d, perr := parseKeepAlive(json.RawMessage(raw))
		if perr != nil || d == nil || *d != want {
			t.Errorf("keep_alive %s = %v, %v; want %v", raw, d, perr, want)
		}
	}
	for _, raw := range []string{`"soon"`, `true`, `{}`, `[0]`} {
		if _, perr := parseKeepAlive(json.RawMessage(raw)); perr == nil {
			t.Errorf("keep_alive %s accepted", raw)
		}
	}
	if d, perr := parseKeepAlive(nil); d != nil || perr != nil {
		t.Errorf("absent keep_alive = %v, %v", d, perr)
	}
}

func TestFormatted(t *testing.T) {
	for answer, want := range map[string][2]string{
		`{"a":1}`:                 {`{"a":1}`, "json"},
		"  [1]\n":                 {`[1]`, "json"},
		"```json\n{\"a\":1}\n```": {`{"a":1}`, "json"},
		"```\n3\n```":             {`3`, "json"},
		"It's 12:00.":             {`"It's 12:00."`, "wrapped"},
		"```json\n{broken\n```":   {`"` + "```json\\n{broken\\n```" + `"`, "wrapped"},
	} {
		got, how := formatted(answer)
		if got != want[0] || how != want[1] || !json.Valid([]byte(got)) {
			t.Errorf("formatted(%q) = %q, %q; want %q, %q", answer, got, how, want[0], want[1])
		}
	}
}
