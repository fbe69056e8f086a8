package mqtt

import (
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
)

// publishProblem restates, independently of topics.go, when hedge may
// publish a reply to topic on a client's say-so: a valid MQTT topic name
// (MQTT 3.1.1 §1.5.3, §4.7; mosquitto's checks) of at most maxTopicBytes,
// outside hedge's own topics (its query and status topics, any device's,
// and the rest of its device subtree but the replies). "" means it may.
func publishProblem(prefix, device, topic string) string {
	switch {
	case topic == "" || len(topic) > maxTopicBytes || !utf8.ValidString(topic):
		return "empty, too long or not UTF-8"
	case strings.ContainsAny(topic, "+#"), topic[0] == '$':
		return "wildcard or $"
	}
	for _, r := range topic {
		if r == 0 || unicode.IsControl(r) || r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe {
			return "forbidden character"
		}
	}
	levels := strings.Split(topic, "/")
	for _, l := range levels {
		if l == "" {
			return "empty level"
		}
	}
	if len(levels) == 3 && levels[0] == prefix && (levels[2] == "query" || levels[2] == "status") {
		return "a hedge query or status topic"
	}
	if len(levels) == 4 && levels[0] == prefix && levels[2] == "query" {
		return "a hedge caller query topic"
	}
	own := prefix + "/" + device + "/"
	if strings.HasPrefix(topic, own) && !strings.HasPrefix(topic, own+"reply/") {
		return "hedge's own topic"
	}
	return ""
}

// FuzzDecode feeds arbitrary payloads to the MQTT request decoder. A
// request always ends with an id and either a reply topic hedge may publish
// to, or no topic and the reason; a reply topic the client names is used
// whenever it is acceptable, even when the rest of the request is not; the
// error reply is one a client can read.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"1","text":"hi","reply_to":"app/replies"}`))
	const maxReq = 1024
	tr := &Transport{o: Options{MaxRequestBytes: maxReq}, t: newTopics("hedge", "dev1")}
	f.Fuzz(func(t *testing.T, payload []byte) {
		r := tr.decode(tr.t.query, payload)
		q := r.q
		if q.ID == "" {
			t.Fatalf("decode(%q): no id", payload)
		}
		if r.generated {
			if _, err := hex.DecodeString(q.ID); err != nil || len(q.ID) != 16 {
				t.Fatalf("decode(%q): generated id %q", payload, q.ID)
			}
		}
		// The caller is the reply topic less its id level; on a caller
		// query topic, that topic.
		if want := strings.TrimSuffix(q.ReplyTo, "/"+q.ID); q.Transport != "mqtt" || q.Caller != want {
			t.Fatalf("decode(%q): transport %q, caller %q, reply_to %q, want caller %q", payload, q.Transport, q.Caller, q.ReplyTo, want)
		}
		if named := tr.decode(tr.t.query+"/app", payload).q; named.Caller != tr.t.query+"/app" || !r.generated && named.ReplyTo != q.ReplyTo {
			t.Fatalf("decode(%q) on a caller topic: caller %q, reply_to %q", payload, named.Caller, named.ReplyTo)
		}
		if q.ReplyTo == "" {
			if r.err == nil || r.err.Message == "" {
				t.Fatalf("decode(%q): no reply topic and no reason", payload)
			}
		} else if why := publishProblem("hedge", "dev1", q.ReplyTo); why != "" {
			t.Fatalf("decode(%q): reply topic %q: %s", payload, q.ReplyTo, why)
		}
		if r.err != nil {
			if r.err.Code != agent.CodeBadRequest && r.err.Code != agent.CodeTooLarge {
				t.Fatalf("decode(%q): error %v", payload, r.err)
			}
			if _, err := marshalAnswer(agent.ErrorAnswer(q.ID, r.err)); err != nil {
				t.Fatalf("decode(%q): error reply: %v", payload, err)
			}
		} else {
			// Apart from what the transport adds, the query is the decoder's.
			dq, derr := agent.DecodeRequest(payload, maxReq)
			if derr != nil {
				t.Fatalf("decode(%q) accepted what DecodeRequest refuses: %v", payload, derr)
			}
			dq.Transport, dq.Caller, dq.ReplyTo = q.Transport, q.Caller, q.ReplyTo
			if r.generated {
				dq.ID = q.ID
			}
			if !reflect.DeepEqual(dq, q) {
				t.Fatalf("decode(%q) = %+v, DecodeRequest gives %+v", payload, q, dq)
			}
		}
		if want, ok := goDecoderReplyTo(payload); ok && len(payload) <= maxReq &&
			publishProblem("hedge", "dev1", want) == "" && q.ReplyTo != want {
			t.Fatalf("decode(%q): reply goes to %q, the request asked for %q (error %v)", payload, q.ReplyTo, want, r.err)
		}
	})
}

// goDecoderReplyTo returns the reply_to encoding/json reads from a
// well-formed UTF-8 JSON object, if it is a string.
func goDecoderReplyTo(payload []byte) (string, bool) {
	if !utf8.Valid(payload) || !json.Valid(payload) {
		return "", false
	}
	var probe struct {
		ReplyTo json.RawMessage `json:"reply_to"`
	}
	var s string
	if json.Unmarshal(payload, &probe) != nil || probe.ReplyTo == nil || json.Unmarshal(probe.ReplyTo, &s) != nil || s == "" {
		return "", false
	}
	return s, true
}

// matchFilter is MQTT 3.1.1 §4.7 topic filter matching, written level by
// level and recursively, to check filterMatches against.
func matchFilter(filter, topic []string, first bool) bool {
	if first && len(topic) > 0 && strings.HasPrefix(topic[0], "$") && len(filter) > 0 && (filter[0] == "+" || filter[0] == "#") {
		return false
	}
	switch {
	case len(filter) == 0:
		return len(topic) == 0
	case filter[0] == "#":
		return true
	case len(topic) == 0:
		return false
	case filter[0] == "+" || filter[0] == topic[0]:
		return matchFilter(filter[1:], topic[1:], false)
	}
	return false
}

// FuzzTopics checks the reply_to rules and topic filter matching on
// arbitrary strings: a reply_to is accepted exactly when MQTT allows
// publishing to it and it is not one of hedge's own topics, and the action
// allow-list matches a topic exactly when MQTT's filter rules say so.
func FuzzTopics(f *testing.F) {
	f.Add("home/kitchen/light", "home/+/light")
	tp := newTopics("hedge", "dev1")
	f.Fuzz(func(t *testing.T, topic, filter string) {
		got, want := tp.replyToProblem(topic), publishProblem("hedge", "dev1", topic)
		if (got == "") != (want == "") {
			t.Fatalf("replyToProblem(%q) = %q, want a problem: %v (%s)", topic, got, want != "", want)
		}
		if why := idLevelProblem(topic); why == "" {
			if p := publishProblem("hedge", "dev1", tp.defaultReply(topic)); p != "" {
				t.Fatalf("id %q is accepted, but its reply topic %q is not: %s", topic, tp.defaultReply(topic), p)
			}
		}
		if config.TopicFilterProblem(filter) != "" || topic == "" || !utf8.ValidString(topic) || strings.ContainsAny(topic, "+#\x00") {
			return
		}
		m, w := filterMatches(filter, topic), matchFilter(strings.Split(filter, "/"), strings.Split(topic, "/"), true)
		if m != w {
			t.Fatalf("filterMatches(%q, %q) = %v, want %v", filter, topic, m, w)
		}
	})
}
