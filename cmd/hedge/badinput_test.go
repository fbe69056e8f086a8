package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
	"github.com/hedge-edge/hedge/systemd"
)

// The bad-input catalogue (docs/bad-input.md): every hostile input sent to
// the real hedge binary through each transport where it applies — the Unix
// socket, MQTT through a real mosquitto, HTTP — gets its documented reply,
// and after each one hedge still answers a good question on that transport.
// The test reads the tables of docs/bad-input.md and fails when they and
// the tables below differ, so the two cannot drift apart.

// badInput is one row of the catalogue: the input as each transport gets
// it (nil where the input has no form on that transport) and the outcome.
type badInput struct {
	name   string // the row's first cell in docs/bad-input.md
	socket *badSocket
	mqtt   *badMQTT
	http   *badHTTP
}

// badSocket is a line sent on the socket (its newline added) and the reply
// it gets: the error code, or "" for an answer.
type badSocket struct {
	line string
	id   string // the id the reply carries
	code agent.ErrorCode
}

// Where the reply to an MQTT request goes.
type badDest int

const (
	// toReply: its reply_to, or hedge/<device>/reply/<id> without one.
	toReply badDest = iota
	// toDefault: hedge/<device>/reply/<id>, not the reply_to it names.
	toDefault
	// toNewID: hedge/<device>/reply/<id hedge made up>, or the reply_to
	// given in topic.
	toNewID
	// toNowhere: no reply; counted as unanswered and logged.
	toNowhere
)

// badMQTT is a payload published on hedge/<device>/query and its reply.
type badMQTT struct {
	payload string
	id      string // the request's id; "" when hedge makes one up
	code    agent.ErrorCode
	dest    badDest
	topic   string // the reply_to the reply goes to, when not the default
}

// badHTTP is one HTTP request (POST /v1/chat/completions unless said
// otherwise) and the status and error code of its reply.
type badHTTP struct {
	method, path string
	body         string
	bigHeader    bool // a header of 64 KiB
	status       int
	code         string // "" : a completion (2xx) or a reply that is not JSON
}

// sock and mq are the socket and MQTT forms of a row; code "" is an answer.
func sock(line, id string, code agent.ErrorCode) *badSocket {
	return &badSocket{line: line, id: id, code: code}
}

func mq(payload, id string, code agent.ErrorCode, dest badDest) *badMQTT {
	return &badMQTT{payload: payload, id: id, code: code, dest: dest}
}

func webErr(status int, code, body string) *badHTTP {
	return &badHTTP{body: body, status: status, code: code}
}

// chatBody is a chat completion request for hedge-auto whose last message
// has content (raw JSON), with more top-level JSON appended as it is.
func chatBody(content, more string) string {
	return `{"model":"hedge-auto","messages":[{"role":"user","content":` + content + `}]` + more + `}`
}

// The limits of the hedge under test: the defaults.
const (
	badMaxText  = 16384                 // limits.max_query_bytes
	badMaxLine  = 6*badMaxText + 10<<10 // agent.MaxRequestBytes
	badMaxBody  = 4 * badMaxLine        // httpapi.BodyLimit
	badDevice   = "e2e"                 // device
	badReplyDir = "hedge/e2e/reply/"    // the default reply topics
	badQueryTop = "hedge/e2e/query"     // the query topic
)

func badInputs() []badInput {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	deep, deeper := nest(20000), nest(100000)
	bigText := strings.Repeat("x", badMaxText+1)
	bigLine := strings.Repeat("x", badMaxLine+1)
	longID := strings.Repeat("i", 300)
	longTopic := "bd/" + strings.Repeat("t", 1100)
	bad, large := agent.CodeBadRequest, agent.CodeTooLarge
	// row is a request sent alike on the socket and over MQTT.
	row := func(name string, line, id string, code agent.ErrorCode, dest badDest, web *badHTTP) badInput {
		return badInput{name: name, socket: sock(line, id, code), mqtt: mq(line, id, code, dest), http: web}
	}
	// replyTo is a request with a hostile reply_to: refused on the socket
	// (the MQTT transport's rules, since late answers are published there)
	// and over MQTT, whose error reply goes to the default reply topic.
	replyTo := func(name, id, topic string) badInput {
		b, _ := json.Marshal(agent.Query{ID: id, Text: "hello", ReplyTo: topic})
		return row(name, string(b), id, bad, toDefault, nil)
	}
	return []badInput{
		// Size.
		row("text over `limits.max_query_bytes`", `{"id":"big-text","text":"`+bigText+`"}`, "big-text", large, toReply,
			webErr(413, "too_large", chatBody(`"`+bigText+`"`, ""))),
		row("request over the line, payload or body limit", `{"id":"big-line","text":"`+bigLine+`"}`, "big-line", large, toDefault,
			webErr(413, "too_large", chatBody(`"`+strings.Repeat("x", badMaxBody)+`"`, ""))),
		{name: "plain line over the limit", socket: sock(strings.Repeat("y", badMaxLine+1), "", large),
			mqtt: mq(strings.Repeat("y", badMaxLine+1), "", large, toNewID)},
		// Deep JSON: Go's decoder stops at 10,000 levels; 100,000 levels
		// are over the socket and MQTT size limit first.
		row("JSON nested 20,000 deep", `{"id":"deep","text":"hello","x":`+deep+`}`, "deep", bad, toReply,
			webErr(400, "bad_request", chatBody(`"hello"`, `,"x":`+deep))),
		row("JSON nested 100,000 deep", `{"id":"deeper","text":"hello","x":`+deeper+`}`, "deeper", large, toDefault,
			webErr(400, "bad_request", chatBody(`"hello"`, `,"x":`+deeper))),
		// Encoding and control characters.
		{name: "invalid UTF-8 in a plain line", socket: sock("caf\xe9 au lait", "", bad),
			mqtt: mq("caf\xe9 au lait", "", bad, toNewID)},
		row("invalid UTF-8 inside JSON", "{\"id\":\"utf8\",\"text\":\"caf\xe9\"}", "utf8", bad, toReply,
			webErr(400, "bad_request", chatBody("\"caf\xe9\"", ""))),
		{name: "NUL byte in a plain line", socket: sock("hello\x00world", "", bad),
			mqtt: mq("hello\x00world", "", bad, toNewID)},
		row("NUL in text (`\\u0000`)", `{"id":"nul","text":"hello\u0000world"}`, "nul", bad, toReply,
			webErr(400, "bad_request", chatBody(`"hello\u0000world"`, ""))),
		row("ESC in text (`\\u001b[2J`)", `{"id":"esc","text":"hello\u001b[2J"}`, "esc", bad, toReply,
			webErr(400, "bad_request", chatBody(`"hello\u001b[2J"`, ""))),
		row("raw control byte inside a JSON string", "{\"id\":\"ctl\",\"text\":\"a\x01b\"}", "ctl", bad, toReply,
			webErr(400, "bad_request", chatBody("\"a\x01b\"", ""))),
		row("`\\r`, `\\n`, `\\t` inside text", `{"id":"crlf","text":"hello\r\n\tthere"}`, "crlf", "", toReply,
			&badHTTP{body: chatBody(`"hello\r\n\tthere"`, ""), status: 200}),
		{name: "carriage return inside a plain line", socket: sock("hello\rthere", "", ""), mqtt: mq("hello\rthere", "", "", toNewID)},
		// max_tokens.
		row("`max_tokens` above `limits.max_tokens`", `{"id":"mt-big","text":"hello","max_tokens":1000000000}`, "mt-big", bad, toReply,
			webErr(400, "bad_request", chatBody(`"hello"`, `,"max_tokens":1000000000`))),
		row("`max_tokens` beyond 64 bits", `{"id":"mt-huge","text":"hello","max_tokens":99999999999999999999}`, "mt-huge", bad, toReply,
			webErr(400, "bad_request", chatBody(`"hello"`, `,"max_tokens":99999999999999999999`))),
		row("negative `max_tokens`", `{"id":"mt-neg","text":"hello","max_tokens":-1}`, "mt-neg", bad, toReply,
			webErr(400, "bad_request", chatBody(`"hello"`, `,"max_tokens":-1`))),
		row("fractional `max_tokens`", `{"id":"mt-frac","text":"hello","max_tokens":1.5}`, "mt-frac", bad, toReply,
			webErr(400, "bad_request", chatBody(`"hello"`, `,"max_tokens":1.5`))),
		// prefer (HTTP: the model stands for it).
		row("unknown `prefer` (HTTP: `model`)", `{"id":"pref","text":"hello","prefer":"fastest"}`, "pref", bad, toReply,
			webErr(404, "model_not_found", `{"model":"hedge-fastest","messages":[{"role":"user","content":"hello"}]}`)),
		row("`prefer` in another letter case", `{"id":"pref-case","text":"hello","prefer":"LOCAL"}`, "pref-case", bad, toReply,
			webErr(404, "model_not_found", `{"model":"HEDGE-LOCAL","messages":[{"role":"user","content":"hello"}]}`)),
		// Shape.
		row("unknown field", `{"id":"unknown","text":"hello","colour":"red"}`, "unknown", bad, toReply,
			&badHTTP{body: chatBody(`"hello"`, `,"colour":"red"`), status: 200}),
		row("`text` of the wrong type", `{"id":"wt-text","text":5}`, "wt-text", bad, toReply,
			webErr(400, "bad_request", chatBody(`5`, ""))),
		row("`stream` of the wrong type", `{"id":"wt-stream","text":"hello","stream":"yes"}`, "wt-stream", bad, toReply,
			webErr(400, "bad_request", chatBody(`"hello"`, `,"stream":"yes"`))),
		{name: "`id` of the wrong type", socket: sock(`{"id":{"a":1},"text":"hello"}`, "", bad),
			mqtt: mq(`{"id":{"a":1},"text":"hello"}`, "", bad, toNewID)},
		{name: "`id` of the wrong type, with a `reply_to`", socket: sock(`{"id":7,"text":"hello","reply_to":"bd/wt-id"}`, "", bad),
			mqtt: &badMQTT{payload: `{"id":7,"text":"hello","reply_to":"bd/wt-id"}`, code: bad, dest: toNewID, topic: "bd/wt-id"}},
		{name: "an array instead of an object", socket: sock(`[{"id":"arr","text":"hello"}]`, "", bad),
			mqtt: mq(`[{"id":"arr","text":"hello"}]`, "", bad, toNewID),
			http: webErr(400, "bad_request", `[`+chatBody(`"hello"`, "")+`]`)},
		row("truncated JSON", `{"id":"trunc","text":"hel`, "trunc", bad, toDefault,
			webErr(400, "bad_request", `{"model":"hedge-auto","messages":[{"role":"user","content":"hel`)),
		row("data after the object", `{"id":"after","text":"hello"} {"text":"again"}`, "after", bad, toDefault,
			webErr(400, "bad_request", chatBody(`"hello"`, "")+` {"x":1}`)),
		{name: "body that is not JSON", http: webErr(400, "bad_request", "hello")},
		row("empty text", `{"id":"empty","text":""}`, "empty", bad, toReply, webErr(400, "bad_request", chatBody(`""`, ""))),
		row("blank text", `{"id":"blank","text":" \t "}`, "blank", bad, toReply, webErr(400, "bad_request", chatBody(`" \t "`, ""))),
		{name: "empty line, payload or body", socket: sock("", "", bad), mqtt: mq("", "", bad, toNewID),
			http: webErr(400, "bad_request", "")},
		// Ids that cannot name a reply topic.
		{name: "`id` over 256 bytes", socket: sock(`{"id":"`+longID+`","text":"hello"}`, longID, bad),
			mqtt: mq(`{"id":"`+longID+`","text":"hello"}`, longID, bad, toNowhere)},
		{name: "`id` holding `/`, without `reply_to`", socket: sock(`{"id":"a/b","text":"hello"}`, "a/b", ""),
			mqtt: mq(`{"id":"a/b","text":"hello"}`, "a/b", bad, toNowhere)},
		{name: "`id` holding `+`, without `reply_to`", socket: sock(`{"id":"+","text":"hello"}`, "+", ""),
			mqtt: mq(`{"id":"+","text":"hello"}`, "+", bad, toNowhere)},
		{name: "`id` holding `/`, with a `reply_to`", socket: sock(`{"id":"c/d","text":"hello","reply_to":"bd/slash"}`, "c/d", ""),
			mqtt: &badMQTT{payload: `{"id":"c/d","text":"hello","reply_to":"bd/slash"}`, id: "c/d", topic: "bd/slash"}},
		// Topic injection through reply_to.
		replyTo("`reply_to` holding `+`", "rt-plus", "bd/+/x"),
		replyTo("`reply_to` `#`", "rt-hash", "#"),
		replyTo("`reply_to` under `$SYS`", "rt-sys", "$SYS/broker/x"),
		replyTo("`reply_to` holding NUL", "rt-nul", "bd/a\x00b"),
		replyTo("`reply_to` holding ESC", "rt-esc", "bd/\x1b[2J"),
		replyTo("`reply_to` with an empty level", "rt-level", "bd//x"),
		replyTo("`reply_to` over 1024 bytes", "rt-long", longTopic),
		row("`reply_to` that is not UTF-8", "{\"id\":\"rt-utf8\",\"text\":\"hello\",\"reply_to\":\"bd/\xff\"}", "rt-utf8", bad, toDefault, nil),
		replyTo("`reply_to` on hedge's own query topic", "rt-own", badQueryTop),
		replyTo("`reply_to` on another device's status topic", "rt-status", "hedge/other/status"),
		replyTo("`reply_to` on an action topic (`mqtt.actions.allow`)", "rt-action", "home/kitchen/light/set"),
		row("empty `reply_to`", `{"id":"rt-empty","text":"hello","reply_to":""}`, "rt-empty", "", toReply, nil),
		{name: "hostile `reply_to` and no `id`", socket: sock(`{"text":"hello","reply_to":"#"}`, "", bad),
			mqtt: mq(`{"text":"hello","reply_to":"#"}`, "", bad, toNewID)},
		// HTTP only.
		{name: "`n` other than 1", http: webErr(400, "bad_request", chatBody(`"hello"`, `,"n":2`))},
		{name: "last message not the user's", http: webErr(400, "bad_request",
			`{"model":"hedge-auto","messages":[{"role":"user","content":"hello"},{"role":"assistant","content":"hi"}]}`)},
		{name: "image content part", http: webErr(400, "bad_request",
			chatBody(`[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]`, ""))},
		{name: "header over 32 KiB", http: &badHTTP{body: chatBody(`"hello"`, ""), bigHeader: true, status: 431}},
		{name: "wrong method", http: &badHTTP{method: http.MethodGet, status: 405, code: "method_not_allowed"}},
		{name: "unknown endpoint", http: &badHTTP{path: "/v1/completions", status: 404, code: "not_found"}},
	}
}

// The cells of docs/bad-input.md for a row.

func (c *badSocket) cell() string {
	switch {
	case c == nil:
		return "—"
	case c.code == "":
		return "answered"
	}
	return "`" + string(c.code) + "`"
}

func (c *badMQTT) cell() string {
	if c == nil {
		return "—"
	}
	what := "answered"
	if c.code != "" {
		what = "`" + string(c.code) + "`"
	}
	switch c.dest {
	case toDefault:
		return what + " on the default reply topic"
	case toNewID:
		if c.topic != "" {
			return what + " on `reply_to`, with a new id"
		}
		return what + " on a new id's reply topic"
	case toNowhere:
		return "no reply: counted `unanswered`, logged"
	}
	if c.topic != "" {
		return what + " on `reply_to`"
	}
	return what
}

func (c *badHTTP) cell() string {
	switch {
	case c == nil:
		return "—"
	case c.code == "":
		return strconv.Itoa(c.status)
	}
	return fmt.Sprintf("%d `%s`", c.status, c.code)
}

// badHedge is the hedge under test with every transport on.
type badHedge struct {
	*proc
	httpURL string
	broker  *mqtttest.Mosquitto
}

func startBadHedge(t *testing.T) *badHedge {
	t.Helper()
	return startBadHedgeWith(t, tinyModel(t), "  max_tokens: 4\n")
}

// startBadHedgeWith starts the bad-input hedge with another LLM model and
// llm settings (YAML lines under llm:).
func startBadHedgeWith(t *testing.T, model, llmSettings string) *badHedge {
	t.Helper()
	broker := mqtttest.Start(t, mqtttest.Config{})
	state := tempState(t, "hbad")
	port := mqtttest.FreePort(t)
	// The small LLM answers what the intent model does not, so that every
	// input hedge takes gets an answer, not a no_tier error.
	cfg := fmt.Sprintf(`version: 1
device: %[6]s
state_dir: %[1]s
socket: %[1]s/h.sock
http:
  listen: 127.0.0.1:%[2]d
mqtt:
  broker: %[3]s
slm:
  runtime_library: %[4]s
  threads: 1
llm:
  model: %[5]s
  threads: 1
%[7]s`, state, port, broker.URL, ortLibrary(t), model, badDevice, llmSettings)
	path := filepath.Join(state, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &badHedge{proc: launch(t, path), httpURL: fmt.Sprintf("http://127.0.0.1:%d", port), broker: broker}
	h.state, h.socket = state, filepath.Join(state, "h.sock")
	// Ready means every part: socket, HTTP, MQTT subscribed, SLM, LLM.
	deadline := time.Now().Add(2 * time.Minute) // a first start trains the intent model
	for time.Now().Before(deadline) {
		if resp, err := http.Get(h.httpURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		h.alive(t)
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("hedge not ready\n%s", h.logs.String())
	return nil
}

func TestBadInputCatalogue(t *testing.T) {
	rows := badInputs()
	var cells [][]string
	for _, r := range rows {
		cells = append(cells, []string{r.name, r.socket.cell(), r.mqtt.cell(), r.http.cell()})
	}
	checkDocTable(t, "| input | socket | MQTT | HTTP |", cells)
	var ollamaCells [][]string
	for _, r := range ollamaBadInputs() {
		ollamaCells = append(ollamaCells, []string{r.name, fmt.Sprintf("`%s %s`", r.method, r.path), strconv.Itoa(r.status)})
	}
	checkDocTable(t, "| Ollama input | endpoint | status |", ollamaCells)
	start := time.Now()
	h := startBadHedge(t)
	t.Logf("hedge ready in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()

	mq := newBadClient(t, h.broker.URL)
	web := &http.Client{Timeout: 15 * time.Second}
	var sent, nowhere, nSocket, nMQTT, nHTTP int
	for i, r := range rows {
		if r.socket != nil {
			t.Run("socket/"+r.name, func(t *testing.T) { h.socketRow(t, r.socket) })
			nSocket++
		}
		if r.mqtt != nil {
			t.Run("mqtt/"+r.name, func(t *testing.T) { mq.row(t, r.mqtt) })
			sent++
			if r.mqtt.dest == toNowhere {
				nowhere++
			}
			// A good question still gets its answer, on its reply_to.
			mq.probe(t, i)
			sent++
			nMQTT++
		}
		if r.http != nil {
			t.Run("http/"+r.name, func(t *testing.T) { h.httpRow(t, web, r.http) })
			nHTTP++
		}
		h.alive(t)
	}
	t.Logf("%d inputs: %d on the socket, %d over MQTT, %d over HTTP, in %s",
		len(rows), nSocket, nMQTT, nHTTP, time.Since(start).Round(time.Millisecond))
	for _, r := range ollamaBadInputs() {
		t.Run("ollama/"+r.name, func(t *testing.T) { h.ollamaRow(t, web, r) })
		h.alive(t)
	}

	// Nothing was published anywhere but where replies belong: no hostile
	// reply_to reached the broker, and hedge never lost its connection.
	mq.onlyReplyTopics(t)
	if strings.Contains(h.logs.String(), "broker connection lost") {
		t.Errorf("hedge lost its broker connection:\n%s", h.logs.String())
	}

	// A clean stop, and the MQTT counters account for every message: the
	// requests no reply could go to are counted as unanswered.
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	h.waitExit(t, 20*time.Second)
	st := mqttStopCounters(t, h.logs.String())
	if st["received"] != sent || st["unanswered"] != nowhere {
		t.Errorf("mqtt counters %v: want received=%d unanswered=%d", st, sent, nowhere)
	}
	if got := st["answered"] + st["malformed"] + st["unanswered"] + st["duplicates"] + st["busy"]; got != sent {
		t.Errorf("mqtt counters %v account for %d of %d messages", st, got, sent)
	}
}

// socketRow sends one line on a new connection, checks its reply, then asks
// a good question on the same connection.
func (h *badHedge) socketRow(t *testing.T, c *badSocket) {
	conn, err := net.Dial("unix", h.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReaderSize(conn, 64<<10)
	ask := func(line string) agent.Answer {
		if _, err := io.WriteString(conn, line+"\n"); err != nil {
			t.Fatalf("write: %v", err)
		}
		reply, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("no reply: %v", err)
		}
		var a agent.Answer
		if err := json.Unmarshal(reply, &a); err != nil {
			t.Fatalf("reply %q is not JSON: %v", reply, err)
		}
		return a
	}
	checkAnswer(t, ask(c.line), c.id, c.code)
	if a := ask(`{"id":"probe","text":"hello"}`); a.Error != nil || a.Answer == "" || a.ID != "probe" {
		t.Fatalf("the connection no longer answers: %+v", a)
	}
}

// checkAnswer checks a socket or MQTT reply against the catalogue.
func checkAnswer(t *testing.T, a agent.Answer, id string, code agent.ErrorCode) {
	t.Helper()
	if a.ID != id {
		t.Errorf("reply id %.40q, want %.40q", a.ID, id)
	}
	switch {
	case code == "" && (a.Error != nil || a.Answer == ""):
		t.Errorf("reply %+v, want an answer", a)
	case code != "" && (a.Error == nil || a.Error.Code != code):
		t.Errorf("reply %+v, want error %s", a, code)
	case code != "" && a.Error.Message == "":
		t.Errorf("error %s without a message", code)
	}
}

func (h *badHedge) httpRow(t *testing.T, web *http.Client, c *badHTTP) {
	method, path := c.method, c.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/v1/chat/completions"
	}
	req, err := http.NewRequest(method, h.httpURL+path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.bigHeader {
		req.Header.Set("X-Padding", strings.Repeat("p", 64<<10))
	}
	resp, err := web.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != c.status {
		t.Fatalf("status %d (%.300s), want %d", resp.StatusCode, body, c.status)
	}
	if c.code != "" {
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != c.code || e.Error.Message == "" {
			t.Fatalf("error body %.300s, want code %s", body, c.code)
		}
	}
	// A good question still gets its answer.
	probe := chatBody(`"hello"`, "")
	resp, err = web.Post(h.httpURL+"/v1/chat/completions", "application/json", strings.NewReader(probe))
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	var done struct {
		Choices []struct{ Message struct{ Content string } }
	}
	err = json.NewDecoder(resp.Body).Decode(&done)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || len(done.Choices) != 1 || done.Choices[0].Message.Content == "" {
		t.Fatalf("probe after the row: status %d, %+v, %v", resp.StatusCode, done, err)
	}
}

// badOllama is one request to Ollama's API and the status of its reply,
// which is Ollama's error object {"error": "…"} unless the status is 200.
type badOllama struct {
	name, method, path, body string
	status                   int
}

func ollamaBadInputs() []badOllama {
	chatWith := func(more string) string {
		return `{"model":"hedge-auto","stream":false,"messages":[{"role":"user","content":"hello"}]` + more + `}`
	}
	many := func(item string, n int) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	tool := `{"type":"function","function":{"name":"f"}}`
	post := func(name, path, body string, status int) badOllama {
		return badOllama{name: name, method: http.MethodPost, path: path, body: body, status: status}
	}
	return []badOllama{
		post("`messages` of the wrong type", "/api/chat", `{"model":"hedge-auto","messages":"hello"}`, 400),
		post("`stream` of the wrong type", "/api/chat", chatWith(`,"stream":"yes"`), 400),
		post("`options.num_predict` of the wrong type", "/api/chat", chatWith(`,"options":{"num_predict":"5"}`), 400),
		post("`options.num_predict` below -2", "/api/chat", chatWith(`,"options":{"num_predict":-3}`), 400),
		post("`keep_alive` that is no duration", "/api/chat", chatWith(`,"keep_alive":"soon"`), 400),
		post("`format` neither \"json\" nor a schema", "/api/chat", chatWith(`,"format":"yaml"`), 400),
		post("unknown field", "/api/chat", chatWith(`,"colour":"red"`), 200),
		post("unknown model", "/api/chat", `{"model":"llama3","messages":[{"role":"user","content":"hello"}]}`, 404),
		post("model missing", "/api/chat", `{"messages":[{"role":"user","content":"hello"}]}`, 400),
		post("control character in the model name", "/api/chat", `{"model":"hedge\u001bauto","messages":[]}`, 400),
		post("control character in a tool name", "/api/chat", chatWith(`,"tools":[{"type":"function","function":{"name":"a\u0000b"}}]`), 400),
		post("NUL in the question", "/api/chat", `{"model":"hedge-auto","messages":[{"role":"user","content":"a\u0000b"}]}`, 400),
		post("unknown role", "/api/chat", `{"model":"hedge-auto","messages":[{"role":"robot","content":"hello"}]}`, 400),
		post("last message the assistant's", "/api/chat", `{"model":"hedge-auto","messages":[{"role":"assistant","content":"hello"}]}`, 400),
		post("images", "/api/chat", `{"model":"hedge-auto","messages":[{"role":"user","content":"hello","images":["aGk="]}]}`, 400),
		post("more than 1,000 messages", "/api/chat", `{"model":"hedge-auto","messages":[`+many(`{"role":"user","content":"x"}`, 1001)+`]}`, 400),
		post("more than 128 tools", "/api/chat", chatWith(`,"tools":[`+many(tool, 129)+`]`), 400),
		post("body over the limit", "/api/chat", chatWith(`,"pad":"`+strings.Repeat("x", badMaxBody)+`"`), 413),
		post("truncated JSON", "/api/generate", `{"model":"hedge-auto","prompt":"hel`, 400),
		post("invalid UTF-8", "/api/generate", "{\"model\":\"hedge-auto\",\"prompt\":\"\xff\"}", 400),
		post("`prompt` of the wrong type", "/api/generate", `{"model":"hedge-auto","prompt":5}`, 400),
		post("show of an unknown model", "/api/show", `{"model":"llama3"}`, 404),
		post("pull of a model no catalog has", "/api/pull", `{"model":"llama3"}`, 404),
		{name: "wrong method", method: http.MethodGet, path: "/api/chat", status: 405},
		post("unknown endpoint", "/api/embed", `{"model":"hedge-auto","input":"hello"}`, 404),
	}
}

// ollamaRow sends one Ollama request and checks its status and Ollama's
// error object, then asks a good question on /api/chat.
func (h *badHedge) ollamaRow(t *testing.T, web *http.Client, c badOllama) {
	req, err := http.NewRequest(c.method, h.httpURL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := web.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct{ Error string }
	switch {
	case resp.StatusCode != c.status:
		t.Fatalf("status %d (%.300s), want %d", resp.StatusCode, body, c.status)
	case c.status != 200 && (json.Unmarshal(body, &e) != nil || e.Error == ""):
		t.Fatalf("error body %.300s is not Ollama's {\"error\": …}", body)
	}
	probe := `{"model":"hedge-auto","stream":false,"messages":[{"role":"user","content":"hello"}]}`
	resp, err = web.Post(h.httpURL+"/api/chat", "application/json", strings.NewReader(probe))
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	var done struct {
		Done    bool
		Message struct{ Content string }
	}
	err = json.NewDecoder(resp.Body).Decode(&done)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || !done.Done || done.Message.Content == "" {
		t.Fatalf("probe after the row: status %d, %+v, %v", resp.StatusCode, done, err)
	}
}

// badClient is a device on the broker that sees every message.
type badClient struct {
	c      paho.Client
	mu     sync.Mutex
	msgs   []badMsg
	notify chan struct{}
}

type badMsg struct {
	topic   string
	payload []byte
	taken   bool
}

func newBadClient(t *testing.T, url string) *badClient {
	t.Helper()
	b := &badClient{notify: make(chan struct{}, 1)}
	b.c = paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("bad-input-device"))
	if tok := b.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { b.c.Disconnect(100) })
	tok := b.c.Subscribe("#", 1, func(_ paho.Client, m paho.Message) {
		b.mu.Lock()
		b.msgs = append(b.msgs, badMsg{topic: m.Topic(), payload: m.Payload()})
		b.mu.Unlock()
		select {
		case b.notify <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return b
}

func (b *badClient) publish(t *testing.T, payload string) {
	t.Helper()
	if tok := b.c.Publish(badQueryTop, 1, false, []byte(payload)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

// take waits for the first message not taken yet that match accepts, and
// marks it taken.
func (b *badClient) take(t *testing.T, what string, match func(m badMsg) bool) badMsg {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		b.mu.Lock()
		for i := range b.msgs {
			if !b.msgs[i].taken && match(b.msgs[i]) {
				b.msgs[i].taken = true
				m := b.msgs[i]
				b.mu.Unlock()
				return m
			}
		}
		b.mu.Unlock()
		select {
		case <-b.notify:
		case <-deadline:
			t.Fatalf("no %s within 15s", what)
		}
	}
}

var newIDRe = regexp.MustCompile(`^[0-9a-f]{16}$`)

func (b *badClient) row(t *testing.T, c *badMQTT) {
	b.publish(t, c.payload)
	if c.dest == toNowhere {
		return
	}
	var want func(m badMsg) bool
	id := c.id
	switch {
	case c.topic != "":
		want = func(m badMsg) bool { return m.topic == c.topic }
	case c.dest == toNewID:
		want = func(m badMsg) bool {
			gen, ok := strings.CutPrefix(m.topic, badReplyDir)
			if ok && newIDRe.MatchString(gen) {
				id = gen
			}
			return ok && newIDRe.MatchString(gen)
		}
	default:
		want = func(m badMsg) bool { return m.topic == badReplyDir+c.id }
	}
	m := b.take(t, "reply", want)
	var a agent.Answer
	if err := json.Unmarshal(m.payload, &a); err != nil {
		t.Fatalf("reply %q on %s is not JSON: %v", m.payload, m.topic, err)
	}
	if c.dest == toNewID && c.topic != "" {
		id = a.ID // hedge made it up; the reply_to is what ties it
		if !newIDRe.MatchString(id) {
			t.Errorf("reply id %q is not an id hedge made up", id)
		}
	}
	checkAnswer(t, a, id, c.code)
}

// probe asks a good question with a reply_to and waits for its answer.
func (b *badClient) probe(t *testing.T, i int) {
	t.Helper()
	topic := fmt.Sprintf("bd/probe/%d", i)
	b.publish(t, fmt.Sprintf(`{"id":"probe-%d","text":"hello","reply_to":%q}`, i, topic))
	m := b.take(t, "probe reply on "+topic, func(m badMsg) bool { return m.topic == topic })
	var a agent.Answer
	if err := json.Unmarshal(m.payload, &a); err != nil || a.Error != nil || a.Answer == "" {
		t.Fatalf("probe %d: %s (%v)", i, m.payload, err)
	}
}

// onlyReplyTopics checks that every message the client saw was a request,
// hedge's status, or a reply on a default reply topic or a bd/ reply_to.
func (b *badClient) onlyReplyTopics(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		switch {
		case m.topic == badQueryTop, m.topic == "hedge/e2e/status",
			strings.HasPrefix(m.topic, badReplyDir) && len(m.topic) < 64,
			strings.HasPrefix(m.topic, "bd/") && len(m.topic) < 64 && !strings.ContainsAny(m.topic, "+#\x00\x1b") && !strings.Contains(m.topic, "//"):
		default:
			t.Errorf("hedge published on %.80q: %.200s", m.topic, m.payload)
		}
	}
}

var mqttStopRe = regexp.MustCompile(`msg="mqtt transport stopped"(.*)`)

// mqttStopCounters reads the counters of the MQTT transport's stop line.
func mqttStopCounters(t *testing.T, logs string) map[string]int {
	t.Helper()
	m := mqttStopRe.FindStringSubmatch(logs)
	if m == nil {
		t.Fatalf("no mqtt stop line in the logs:\n%s", logs)
	}
	out := map[string]int{}
	for _, kv := range strings.Fields(m[1]) {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if err == nil {
			out[k] = n
		}
	}
	return out
}

// configTrick is a configuration with a path trick, and the key hedge's
// error names ("" : the config is accepted).
type configTrick struct {
	name string
	// yaml is the config after "version: 1"; {dir} is a fresh directory.
	yaml string
	// setup prepares the directory before hedge runs.
	setup func(t *testing.T, dir string)
	// run starts `hedge run` rather than `hedge config check`.
	run bool
	key string
}

// runConfig is a config for `hedge run` that is quick to refuse or start:
// no intent model to train, and only the listeners a trick needs (mqtt and
// http are whole sections, "" for off).
func runConfig(state, socket, mqtt, http, more string) string {
	if mqtt == "" {
		mqtt = "mqtt:\n  enabled: false\n"
	}
	if http == "" {
		http = "http:\n  enabled: false\n"
	}
	return "state_dir: " + state + "\nsocket: " + socket + "\nslm:\n  enabled: false\n" + mqtt + http + more
}

func configTricks() []configTrick {
	writeFile := func(name string, mode os.FileMode) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("s3cret-value-0123456789\n"), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	const state, socket = "{dir}/state", "{dir}/h.sock"
	return []configTrick{
		{name: "NUL byte in `state_dir`", yaml: "state_dir: \"{dir}/a\\0b\"\n", key: "state_dir"},
		{name: "NUL byte in `socket`", yaml: "socket: \"{dir}/h\\0.sock\"\n", key: "socket"},
		{name: "NUL byte in `llm.model`", yaml: "llm:\n  model: \"{dir}/m\\0.gguf\"\n", key: "llm.model"},
		{name: "NUL byte in `slm.intents`", yaml: "slm:\n  intents: \"{dir}/i\\0.yaml\"\n", key: "slm.intents"},
		{name: "NUL byte in `http.token_file`", yaml: "http:\n  token_file: \"{dir}/t\\0\"\n", key: "http.token_file"},
		{name: "empty `state_dir`", yaml: "state_dir: \"\"\n", key: "state_dir"},
		{name: "`socket` over 107 bytes", yaml: "socket: {dir}/" + strings.Repeat("s", 110) + "\n", key: "socket"},
		{name: "`http.listen` socket path over 107 bytes", yaml: "http:\n  listen: unix:{dir}/" + strings.Repeat("s", 110) + "\n", key: "http.listen"},
		{name: "relative `state_dir` and `socket`", yaml: "state_dir: ./state\nsocket: ./state/h.sock\n"},
		{name: "`..` in `state_dir`", yaml: "state_dir: {dir}/x/../state\n"},
		{name: "`state_dir` is a regular file", yaml: runConfig("{dir}/file", socket, "", "", ""), run: true, key: "state_dir",
			setup: writeFile("file", 0o600)},
		{name: "`state_dir` writable by others", yaml: runConfig(state, socket, "", "", ""), run: true, key: "state_dir",
			setup: func(t *testing.T, dir string) {
				mkdir(t, filepath.Join(dir, "state"), 0o777)
			}},
		{name: "`socket` is a symbolic link", yaml: runConfig(state, socket, "", "", ""), run: true, key: "socket",
			setup: func(t *testing.T, dir string) {
				if err := os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, "h.sock")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "`socket` inside a regular file", yaml: runConfig(state, "{dir}/file/h.sock", "", "", ""), run: true, key: "socket",
			setup: writeFile("file", 0o600)},
		{name: "`http.token_file` readable by others", yaml: runConfig(state, socket, "", "http:\n  listen: 127.0.0.1:0\n  token_file: {dir}/token\n", ""),
			run: true, key: "http.token_file", setup: writeFile("token", 0o644)},
		{name: "`http.token_file` is a FIFO", yaml: runConfig(state, socket, "", "http:\n  listen: 127.0.0.1:0\n  token_file: {dir}/fifo\n", ""),
			run: true, key: "http.token_file", setup: func(t *testing.T, dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "`cloud.api_key_file` readable by others", yaml: runConfig(state, socket, "", "", "cloud:\n  base_url: http://127.0.0.1:1/v1\n  api_key_file: {dir}/key\n"),
			run: true, key: "cloud.api_key_file", setup: writeFile("key", 0o640)},
		{name: "`mqtt.password_file` readable by others", yaml: runConfig(state, socket, "mqtt:\n  broker: tcp://127.0.0.1:1\n  username: u\n  password_file: {dir}/pw\n", "", ""),
			run: true, key: "mqtt.password_file", setup: writeFile("pw", 0o604)},
		{name: "`mqtt.tls.key` readable by others", yaml: runConfig(state, socket, "mqtt:\n  broker: ssl://127.0.0.1:1\n  tls:\n    cert: {dir}/cert.pem\n    key: {dir}/key.pem\n", "", ""),
			run: true, key: "mqtt.tls.key", setup: func(t *testing.T, dir string) {
				certs := mqtttest.GenerateCerts(t)
				copyFile(t, certs.ClientCert, filepath.Join(dir, "cert.pem"), 0o644)
				copyFile(t, certs.ClientKey, filepath.Join(dir, "key.pem"), 0o644)
			}},
		{name: "`llm.model` path with `..` to nothing", yaml: runConfig(state, socket, "", "", "llm:\n  model: {dir}/../../no/such/model.gguf\n"), run: true, key: "llm.model"},
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}

func (c configTrick) command() string {
	if c.run {
		return "`hedge run`"
	}
	return "`hedge config check`"
}

func (c configTrick) cell() string {
	if c.key == "" {
		return "accepted"
	}
	return "refused, naming `" + c.key + "`"
}

// TestBadConfigPaths runs hedge on configurations with path tricks: each is
// refused, quickly, by an error that names the key at fault, or accepted
// as documented.
func TestBadConfigPaths(t *testing.T) {
	tricks := configTricks()
	var cells [][]string
	for _, c := range tricks {
		cells = append(cells, []string{c.name, c.command(), c.cell()})
	}
	checkDocTable(t, "| configuration | checked by | outcome |", cells)
	bin := hedgeBinary(t)
	for _, c := range tricks {
		t.Run(c.name, func(t *testing.T) {
			dir := tempState(t, "hcfg")
			if c.setup != nil {
				c.setup(t, dir)
			}
			cfg := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(cfg, []byte("version: 1\n"+strings.ReplaceAll(c.yaml, "{dir}", dir)), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"config", "check", cfg}
			if c.run {
				args = []string{"run", "--config", cfg}
			}
			cmd := exec.Command(bin, args...)
			cmd.Dir = dir
			// The config file alone decides: no HEDGE_* override from the
			// test's environment.
			cmd.Env = []string{"NOTIFY_SOCKET="}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "HEDGE_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("hedge %s still runs after 10s:\n%s", args[0], out.String())
			}
			if c.key == "" {
				if err != nil || strings.TrimSpace(out.String()) != "ok" {
					t.Fatalf("want the config accepted: %v\n%s", err, out.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("hedge %s accepted it:\n%s", args[0], out.String())
			}
			if !namesKey(out.String(), c.key) {
				t.Fatalf("the error does not name %s:\n%s", c.key, out.String())
			}
			// hedge run says "do not restart me" (the unit's
			// RestartPreventExitStatus=); config check fails plainly.
			want := 1
			if c.run {
				want = systemd.ExitConfig
			}
			if code := exitCode(err); code != want {
				t.Fatalf("hedge %s exited %d, want %d:\n%s", args[0], code, want, out.String())
			}
		})
	}
}

// namesKey reports whether an error output names key: the key as a word of
// its own, followed by ":", "=" or a space.
func namesKey(out, key string) bool {
	return regexp.MustCompile(`(^|[^.\w])` + regexp.QuoteMeta(key) + `[:= ]`).MatchString(out)
}

// docTable returns the rows of the table in docs/bad-input.md whose header
// row is header: first cell → the other cells.
func docTable(t *testing.T, header string) (map[string][]string, []string) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/bad-input.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	var order []string
	in := false
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case line == header:
			in = true
			continue
		case in && strings.HasPrefix(line, "| ---"):
			continue
		case in && strings.HasPrefix(line, "| "):
			cells := strings.Split(strings.Trim(line, "| "), " | ")
			if _, dup := rows[cells[0]]; dup {
				t.Errorf("docs/bad-input.md: row %q twice", cells[0])
			}
			rows[cells[0]] = cells[1:]
			order = append(order, cells[0])
			continue
		}
		in = false
	}
	if len(rows) == 0 {
		t.Fatalf("docs/bad-input.md has no table %q", header)
	}
	return rows, order
}

// checkDocTable fails when the table of docs/bad-input.md under header
// and rows (each a first cell, then the others) differ: a row missing on
// either side, or other cells.
func checkDocTable(t *testing.T, header string, rows [][]string) {
	t.Helper()
	doc, order := docTable(t, header)
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r[0]] = true
		want := strings.Join(r[1:], " | ")
		if cells, ok := doc[r[0]]; !ok || strings.Join(cells, " | ") != want {
			t.Errorf("docs/bad-input.md: want the row | %s | %s |, have %q", r[0], want, cells)
		}
	}
	for _, name := range order {
		if !seen[name] {
			t.Errorf("docs/bad-input.md row %q is not in the test", name)
		}
	}
}

// exitCode is the exit status err (from exec's Wait) carries: 0 for nil,
// -1 when the process did not exit by itself.
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}
