package config

import (
	"strings"
	"testing"
)

func TestWyomingListen(t *testing.T) {
	if d := Default(); d.Wyoming.Listen != "" {
		t.Fatalf("wyoming.listen defaults to %q, want off", d.Wyoming.Listen)
	}
	for _, tc := range []struct{ listen, problem string }{
		{"", ""},
		{"127.0.0.1:10700", ""},
		{"0.0.0.0:10700", ""},
		{":10700", ""},
		{"127.0.0.1", "host:port"},
		{"127.0.0.1:99999", "port"},
		{"unix:/run/hedge/w.sock", "TCP"},
	} {
		c, err := Parse([]byte("version: 1\nwyoming:\n  listen: \"" + tc.listen + "\"\n"))
		if err == nil {
			err = c.Validate()
		}
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%q: %v", tc.listen, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), "wyoming.listen") || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%q: %v, want a wyoming.listen problem about %s", tc.listen, err, tc.problem)
		}
	}
}
