package config

import (
	"strings"
	"testing"
)

// snippet is a piece of config after "version: 1" and the problem it must
// report ("" when it is valid).
type snippet struct {
	yaml string
	want string
}

// checkSnippets parses each snippet and checks its problem; no problem may
// show secret, the credential the snippets carry.
func checkSnippets(t *testing.T, secret string, cases []snippet) {
	t.Helper()
	for _, tc := range cases {
		_, err := Parse([]byte("version: 1\n" + tc.yaml))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("a config error shows the credential: %v", err)
		}
	}
}
