package mqtt

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxTopicBytes bounds every topic hedge publishes to on a client's say-so
// (reply_to, action topics). MQTT allows 65535; nothing legitimate is near.
const maxTopicBytes = 1024

// maxIDLevelBytes bounds a request id used as a topic level.
const maxIDLevelBytes = 256

// topics are the topics of one hedge device.
type topics struct {
	prefix, device string
	query          string // <prefix>/<device>/query
	status         string // <prefix>/<device>/status
	replyBase      string // <prefix>/<device>/reply/
	sensors        string // <prefix>/<device>/sensors
}

func newTopics(prefix, device string) topics {
	base := prefix + "/" + device + "/"
	return topics{
		prefix:    prefix,
		device:    device,
		query:     base + "query",
		status:    base + "status",
		replyBase: base + "reply/",
		sensors:   base + "sensors",
	}
}

// defaultReply is the reply topic of a request without reply_to.
func (t topics) defaultReply(id string) string { return t.replyBase + id }

// callerQueries is the filter of the request topics that name their
// caller: <prefix>/<device>/query/<caller>.
func (t topics) callerQueries() string { return t.query + "/+" }

// isQuery reports whether topic is one of this device's request topics:
// the query topic, or the query topic and one non-empty caller level.
func (t topics) isQuery(topic string) bool {
	if topic == t.query {
		return true
	}
	name, ok := strings.CutPrefix(topic, t.query+"/")
	return ok && name != "" && !strings.Contains(name, "/")
}

// caller is whom a request on topic with reply topic reply counts against
// (agent.Query.Caller: cloud budgets). MQTT 3.1.1 tells a subscriber
// nothing of the publisher, so it is a topic: the request topic when it
// names a caller, which a broker ACL can tie to the client's login
// (pattern write hedge/+/query/%u); else the reply topic, less a last
// level that is the request's id, so that one client's requests share it
// whatever their ids. Every request without a reply_to shares
// <prefix>/<device>/reply.
func (t topics) caller(topic, reply, id string) string {
	if topic != t.query {
		return topic
	}
	if parent, ok := strings.CutSuffix(reply, "/"+id); ok && parent != "" {
		return parent
	}
	return reply
}

// topicNameProblem says why s cannot be a topic hedge publishes to; ""
// when it can. The rules keep hedge connected: a broker disconnects a client
// that publishes to a malformed topic (wildcards, NUL, bad UTF-8, control
// characters), so a hostile reply_to must never reach the wire.
func topicNameProblem(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > maxTopicBytes:
		return fmt.Sprintf("is %d bytes, the limit is %d", len(s), maxTopicBytes)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.ContainsAny(s, "+#"):
		return "holds a wildcard (+ or #); a topic to publish to cannot"
	case strings.HasPrefix(s, "$"):
		return "starts with $, which is reserved for the broker ($SYS…)"
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//"):
		return "has an empty topic level"
	}
	for _, r := range s {
		if r == 0 {
			return "holds a NUL character"
		}
		if badTopicRune(r) {
			return fmt.Sprintf("holds the character U+%04X, which MQTT topics must not", r)
		}
	}
	return ""
}

// badTopicRune reports whether r is a control character or a Unicode
// non-character: MQTT 3.1.1 §1.5.3 says topics should not hold them, and
// mosquitto refuses them.
func badTopicRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r >= 0xfdd0 && r <= 0xfdef:
		return true
	case r&0xfffe == 0xfffe:
		return true
	}
	return false
}

// idLevelProblem says why id cannot be the last level of the default reply
// topic; "" when it can.
func idLevelProblem(id string) string {
	switch {
	case id == "":
		return "is empty"
	case len(id) > maxIDLevelBytes:
		return fmt.Sprintf("is %d bytes, the limit is %d", len(id), maxIDLevelBytes)
	case strings.Contains(id, "/"):
		return "holds a /"
	}
	if why := topicNameProblem(id); why != "" {
		return why
	}
	return ""
}

// ownProblem says why topic must not be written by a client's say-so
// because it is hedge's own (query, caller query or status of any device
// under the prefix, or anything of this device but its reply subtree); ""
// otherwise.
// Answering onto a query topic would feed hedge its own replies.
func (t topics) ownProblem(topic string) string {
	if strings.HasPrefix(topic, t.replyBase) {
		return ""
	}
	if strings.HasPrefix(topic, t.prefix+"/"+t.device+"/") {
		return "is one of hedge's own topics"
	}
	if filterMatches(t.prefix+"/+/query", topic) || filterMatches(t.prefix+"/+/query/+", topic) ||
		filterMatches(t.prefix+"/+/status", topic) {
		return "is a hedge query or status topic"
	}
	return ""
}

// replyToProblem says why a client's reply_to is refused; "" when it is
// fine.
func (t topics) replyToProblem(replyTo string) string {
	if why := topicNameProblem(replyTo); why != "" {
		return why
	}
	return t.ownProblem(replyTo)
}

// filterMatches reports whether topic matches the MQTT topic filter f
// (+ one level, # the rest, including the parent level itself).
func filterMatches(f, topic string) bool {
	// Wildcards at the first level do not match topics starting with $
	// (MQTT 3.1.1 §4.7.2).
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(f, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// "a/#" matches "a".
			return frest == "#"
		case !fmore:
			return false
		}
		f, topic = frest, trest
	}
}
