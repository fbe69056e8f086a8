package ollama

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/chat"
)

// request is a body of /api/chat (messages, tools) or /api/generate
// (prompt, system, images); one type, so that a field's path in an error
// is the client's. Fields hedge does not use (think, raw, template,
// context, suffix, truncate, …) are accepted and ignored, as Ollama itself
// ignores fields it does not know.
type request struct {
	Model     string          `json:"model"`
	Stream    *bool           `json:"stream"`
	Format    json.RawMessage `json:"format"`
	Options   *options        `json:"options"`
	KeepAlive json.RawMessage `json:"keep_alive"`

	Messages []message `json:"messages"`
	Tools    []tool    `json:"tools"`

	Prompt string   `json:"prompt"`
	System string   `json:"system"`
	Images []string `json:"images"`
}

// options are the model parameters hedge reads; others (top_k, seed,
// stop, …) are accepted and ignored: the tiers sample as configured.
type options struct {
	NumCtx      *int     `json:"num_ctx"`
	NumPredict  *int     `json:"num_predict"`
	Temperature *float64 `json:"temperature"`
}

type message struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	Images    []string   `json:"images,omitempty"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
	ToolName  string     `json:"tool_name,omitempty"`
}

type toolCall struct {
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

type tool struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// settings are a request's parsed common fields.
type settings struct {
	model     chat.Model
	stream    bool
	format    *format // nil: free text
	maxTokens int
	// unload is keep_alive 0: free the local model after answering, or
	// at once in the form without a prompt.
	unload bool
}

// format is a request's format: JSON, to a schema when one is given.
type format struct {
	schema json.RawMessage // nil for "json"
}

func (c request) settings(a *API) (settings, *chat.Error) {
	m, perr := a.lookup(c.Model)
	if perr != nil {
		return settings{}, perr
	}
	s := settings{model: m, stream: c.Stream == nil || *c.Stream}
	if s.format, perr = parseFormat(c.Format); perr != nil {
		return s, perr
	}
	if s.maxTokens, perr = c.Options.maxTokens(); perr != nil {
		return s, perr
	}
	keep, perr := parseKeepAlive(c.KeepAlive)
	s.unload = keep != nil && *keep == 0
	return s, perr
}

// parseFormat reads format: absent, null or "" for text, "json", or a
// JSON schema object.
func parseFormat(raw json.RawMessage) (*format, *chat.Error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")) || bytes.Equal(raw, []byte(`""`)):
		return nil, nil
	case bytes.Equal(raw, []byte(`"json"`)):
		return &format{}, nil
	case raw[0] == '{':
		return &format{schema: raw}, nil
	}
	return nil, chat.BadRequest("format", `format must be "json" or a JSON schema object, not %.60s`, raw)
}

// maxTokens is num_predict as hedge's max_tokens: -1 (no limit) and -2
// (fill the context) leave the tier's own bound (0). It checks num_ctx
// and temperature too, which hedge accepts but does not apply.
func (o *options) maxTokens() (int, *chat.Error) {
	if o == nil {
		return 0, nil
	}
	if o.NumCtx != nil && *o.NumCtx < 0 {
		return 0, chat.BadRequest("options.num_ctx", "options.num_ctx is %d; it must not be negative", *o.NumCtx)
	}
	if o.Temperature != nil && *o.Temperature < 0 {
		return 0, chat.BadRequest("options.temperature", "options.temperature is %g; it must not be negative", *o.Temperature)
	}
	switch {
	case o.NumPredict == nil, *o.NumPredict == -1, *o.NumPredict == -2:
		return 0, nil
	case *o.NumPredict < 0:
		return 0, chat.BadRequest("options.num_predict", "options.num_predict is %d; use a count, -1 (no limit) or -2 (fill the context)", *o.NumPredict)
	}
	return *o.NumPredict, nil
}

// parseKeepAlive reads keep_alive, a duration ("5m", "0", "-1") or a
// number of seconds; nil when absent. Only 0 acts on hedge (unload): the
// local model's residency is llm.keep_alive's.
func parseKeepAlive(raw json.RawMessage) (*time.Duration, *chat.Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	bad := chat.BadRequest("keep_alive", `keep_alive must be a duration such as "5m", "0" or "-1", or a number of seconds; not %.60s`, raw)
	var secs float64
	if json.Unmarshal(raw, &secs) == nil {
		d := time.Duration(secs * float64(time.Second))
		return &d, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, bad
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		d := time.Duration(n * float64(time.Second))
		return &d, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, bad
	}
	return &d, nil
}

// checkTools bounds the tools a chat request offers and checks their
// names; hedge does not call them yet (docs/ollama.md).
func checkTools(tools []tool) *chat.Error {
	if len(tools) > MaxTools {
		return chat.BadRequest("tools", "tools holds %d tools, the limit is %d", len(tools), MaxTools)
	}
	for i, t := range tools {
		if perr := checkName(fmt.Sprintf("tools[%d].function.name", i), t.Function.Name); perr != nil {
			return perr
		}
	}
	return nil
}

func checkName(field, name string) *chat.Error {
	if name == "" {
		return chat.BadRequest(field, "%s is empty", field)
	}
	if len(name) > MaxNameBytes {
		return chat.BadRequest(field, "%s is %d bytes, the limit is %d", field, len(name), MaxNameBytes)
	}
	if r, ok := agent.ControlChar(name); ok {
		return chat.BadRequest(field, "%s holds the control character U+%04X", field, r)
	}
	return nil
}

// conversation reads a chat request's messages: the question is the last
// message, the user's or a tool's result, and what comes before it the
// system prompt and the history (chat.History). A tool's result reads as
// the user's words "Result of tool NAME: …"; an assistant's tool calls,
// when it said nothing, as "Called tool NAME(ARGUMENTS)".
func conversation(msgs []message) (text, system string, hist []agent.Turn, perr *chat.Error) {
	switch {
	case len(msgs) > MaxMessages:
		return "", "", nil, chat.BadRequest("messages", "messages holds %d messages, the limit is %d", len(msgs), MaxMessages)
	case len(msgs) == 0:
		return "", "", nil, chat.BadRequest("messages", "messages is empty")
	}
	texts := make([]chat.Message, len(msgs))
	for i, m := range msgs {
		if texts[i], perr = plain(i, m); perr != nil {
			return "", "", nil, perr
		}
	}
	last := texts[len(texts)-1]
	if last.Role != "user" {
		return "", "", nil, chat.BadRequest("messages", "the last message has role %q; it must be the user's question or a tool's result", msgs[len(msgs)-1].Role)
	}
	system, hist, perr = chat.History(texts[:len(texts)-1])
	return last.Text, system, hist, perr
}

// plain is message i as chat.History reads it.
func plain(i int, m message) (chat.Message, *chat.Error) {
	if len(m.Images) > 0 {
		return chat.Message{}, chat.BadRequest("messages", "message %d has images; hedge reads text only", i)
	}
	switch m.Role {
	case "system", "user":
		return chat.Message{Role: m.Role, Text: m.Content}, nil
	case "assistant":
		for j, c := range m.ToolCalls {
			if perr := checkName(fmt.Sprintf("messages[%d].tool_calls[%d].function.name", i, j), c.Function.Name); perr != nil {
				return chat.Message{}, perr
			}
		}
		return chat.Message{Role: m.Role, Text: assistantText(m)}, nil
	case "tool":
		if m.ToolName == "" {
			return chat.Message{Role: "user", Text: "Result of a tool: " + m.Content}, nil
		}
		if perr := checkName(fmt.Sprintf("messages[%d].tool_name", i), m.ToolName); perr != nil {
			return chat.Message{}, perr
		}
		return chat.Message{Role: "user", Text: "Result of tool " + m.ToolName + ": " + m.Content}, nil
	}
	return chat.Message{}, chat.BadRequest("messages", "message %d has role %q; Ollama's roles are system, user, assistant and tool", i, m.Role)
}

func assistantText(m message) string {
	if m.Content != "" || len(m.ToolCalls) == 0 {
		return m.Content
	}
	calls := make([]string, len(m.ToolCalls))
	for i, c := range m.ToolCalls {
		calls[i] = fmt.Sprintf("Called tool %s(%s)", c.Function.Name, bytes.TrimSpace(c.Function.Arguments))
	}
	return strings.Join(calls, "\n")
}
