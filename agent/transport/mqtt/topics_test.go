package mqtt

import (
	"strings"
	"testing"
)

func TestReplyToProblem(t *testing.T) {
	tp := newTopics("hedge", "dev1")
	for _, tc := range []struct {
		topic string
		want  string // substring of the problem; "" means accepted
	}{
		{"devices/kitchen/replies", ""},
		{"hedge/dev1/reply/42", ""},
		{"hedge/dev1/reply/a/b", ""},
		{"hedge/dev2/reply/1", ""},
		{"a", ""},
		{"caf\u00e9/r\u00e9ponse", ""},
		{"", "empty"},
		{"a/+/b", "wildcard"},
		{"a/#", "wildcard"},
		{"#", "wildcard"},
		{"$SYS/broker/load", "$"},
		{"$share/g/x", "$"},
		{"/a", "empty topic level"},
		{"a/", "empty topic level"},
		{"a//b", "empty topic level"},
		{"a\x00b", "NUL"},
		{"a\x1fb", "U+001F"},
		{"a\u0085b", "U+0085"},
		{"a\ufffeb", "U+FFFE"},
		{"a\ufdd0b", "U+FDD0"},
		{"a\xffb", "UTF-8"},
		{strings.Repeat("x", 1024), ""},
		{strings.Repeat("x", 1025), "1025 bytes"},
		{"hedge/dev1/query", "own"},
		{"hedge/dev1/status", "own"},
		{"hedge/dev1/sensors", "own"},
		{"hedge/dev2/query", "query or status"},
		{"hedge/dev2/status", "query or status"},
		{"hedge/dev1/query/alice", "own"},
		{"hedge/dev2/query/alice", "query or status"},
		{"hedge/dev2/query/alice/1", ""},
	} {
		got := tp.replyToProblem(tc.topic)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("replyToProblem(%q) = %q, want %q", tc.topic, got, tc.want)
		}
	}
}

func TestIsQuery(t *testing.T) {
	tp := newTopics("hedge", "dev1")
	for topic, want := range map[string]bool{
		"hedge/dev1/query": true, "hedge/dev1/query/alice": true, "hedge/dev1/query/": false,
		"hedge/dev1/query/a/b": false, "hedge/dev1/queryx": false, "hedge/dev2/query": false,
		"hedge/dev2/query/alice": false, "hedge/dev1/reply/1": false,
	} {
		if got := tp.isQuery(topic); got != want {
			t.Errorf("isQuery(%q) = %v, want %v", topic, got, want)
		}
	}
}

// TestCaller: one client's requests share a caller whatever their ids,
// and a caller topic names its caller whatever the reply topic.
func TestCaller(t *testing.T) {
	tp := newTopics("hedge", "dev1")
	for _, tc := range []struct{ topic, reply, id, want string }{
		{"hedge/dev1/query", "hedge/dev1/reply/1", "1", "hedge/dev1/reply"},
		{"hedge/dev1/query", "hedge/dev1/reply/2", "2", "hedge/dev1/reply"},
		{"hedge/dev1/query", "kitchen/replies/42", "42", "kitchen/replies"},
		{"hedge/dev1/query", "kitchen/replies/43", "43", "kitchen/replies"},
		{"hedge/dev1/query", "kitchen/answers", "44", "kitchen/answers"},
		{"hedge/dev1/query", "kitchen/x42", "42", "kitchen/x42"},
		{"hedge/dev1/query", "42", "42", "42"},
		{"hedge/dev1/query/alice", "replies/alice/7", "7", "hedge/dev1/query/alice"},
		{"hedge/dev1/query/alice", "hedge/dev1/reply/8", "8", "hedge/dev1/query/alice"},
	} {
		if got := tp.caller(tc.topic, tc.reply, tc.id); got != tc.want {
			t.Errorf("caller(%q, %q, %q) = %q, want %q", tc.topic, tc.reply, tc.id, got, tc.want)
		}
	}
}

func TestIDLevelProblem(t *testing.T) {
	for id, ok := range map[string]bool{
		"42": true, "req-1.a_b": true, "": false, "a/b": false, "a+b": false,
		"a#": false, "$x": false, "a\x00": false, strings.Repeat("i", 256): true, strings.Repeat("i", 257): false,
	} {
		if got := idLevelProblem(id) == ""; got != ok {
			t.Errorf("idLevelProblem(%q) ok = %v, want %v", id, got, ok)
		}
	}
}

func TestFilterMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"home/kitchen/+/set", "home/kitchen/light/set", true},
		{"home/kitchen/+/set", "home/kitchen/light/state", false},
		{"home/kitchen/+/set", "home/kitchen/set", false},
		{"home/kitchen/+/set", "home/kitchen/a/b/set", false},
		{"home/#", "home/a/b/c", true},
		{"home/#", "home", true},
		{"home/#", "homes/a", false},
		{"#", "anything/at/all", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"+", "a", true},
		{"+", "a/b", false},
		{"a/+", "a/", true},
	} {
		if got := filterMatches(tc.filter, tc.topic); got != tc.want {
			t.Errorf("filterMatches(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

func TestDedupKeySeparatesAskers(t *testing.T) {
	if dedupKey("a/r", "1") == dedupKey("b/r", "1") {
		t.Fatal("same id from two reply topics shares a key")
	}
	if dedupKey("a", "b\x00c") == dedupKey("a\x00b", "c") {
		t.Fatal("key is ambiguous")
	}
}
