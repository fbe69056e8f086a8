package wyoming

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
)

// The test client frames events by the protocol's README on its own, so
// that a mistake shared with the server's framing code cannot hide.

// wevent is an event as the test client reads it.
type wevent struct {
	Type string
	Data map[string]any
}

type client struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *client) raw(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// send writes an event with its data in a data section (data_length).
func (c *client) send(typ string, data map[string]any) {
	c.t.Helper()
	body := ""
	if data != nil {
		b, _ := json.Marshal(data)
		body = string(b)
	}
	c.raw(fmt.Sprintf(`{"type":%q,"data_length":%d,"version":"1.5.4"}`+"\n%s", typ, len(body), body))
}

// sendInline writes an event the older way: data inside the header line.
func (c *client) sendInline(typ string, data map[string]any) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"type": typ, "data": data})
	c.raw(string(b) + "\n")
}

// read reads one event: header line, data_length bytes of data merged
// over inline data, payload_length bytes of payload.
func (c *client) read() wevent {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read header: %v", err)
	}
	var h struct {
		Type          string         `json:"type"`
		Data          map[string]any `json:"data"`
		DataLength    int            `json:"data_length"`
		PayloadLength int            `json:"payload_length"`
		Version       string         `json:"version"`
	}
	if err := json.Unmarshal([]byte(line), &h); err != nil {
		c.t.Fatalf("header %q: %v", line, err)
	}
	if h.Version == "" {
		c.t.Errorf("header %q has no version", line)
	}
	ev := wevent{Type: h.Type, Data: h.Data}
	if ev.Data == nil {
		ev.Data = map[string]any{}
	}
	if h.DataLength > 0 {
		buf := make([]byte, h.DataLength)
		if _, err := readFull(c.r, buf); err != nil {
			c.t.Fatalf("read data: %v", err)
		}
		var extra map[string]any
		if err := json.Unmarshal(buf, &extra); err != nil {
			c.t.Fatalf("data %q: %v", buf, err)
		}
		for k, v := range extra {
			ev.Data[k] = v
		}
	}
	if h.PayloadLength > 0 {
		readFull(c.r, make([]byte, h.PayloadLength))
	}
	return ev
}

func readFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// expect reads one event and checks its type and text.
func (c *client) expect(typ, text string) wevent {
	c.t.Helper()
	ev := c.read()
	if ev.Type != typ {
		c.t.Fatalf("got %s %v, want %s", ev.Type, ev.Data, typ)
	}
	if got, _ := ev.Data["text"].(string); text != "" && !strings.Contains(got, text) {
		c.t.Fatalf("%s text %q, want it to hold %q", typ, got, text)
	}
	return ev
}

// fakeAgent answers by text from a table, records the queries, and can
// hold answers until released.
type fakeAgent struct {
	mu      sync.Mutex
	queries []agent.Query
	hold    chan struct{}
	started chan struct{}
}

var answers = map[string]agent.Answer{
	"turn on the kitchen light": {Tier: agent.TierSLM, Intent: "lights_on_kitchen", Answer: "Kitchen lights on."},
	"hello again":               {Tier: agent.TierCache, CachedFrom: agent.TierSLM, Intent: "greeting", Answer: "Hello!"},
	"why is the sky blue":       {Tier: agent.TierLLM, Intent: "greeting", Answer: "Light scatters."},
	"and the sea":               {Tier: agent.TierCache, CachedFrom: agent.TierCloud, Intent: "weather", Answer: "It mirrors the sky."},
}

func (f *fakeAgent) Handle(ctx context.Context, q agent.Query, emit func(string)) agent.Answer {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	if f.started != nil {
		f.started <- struct{}{}
		<-f.hold
	}
	if q.Text == "panic" {
		panic("handler bug")
	}
	if a, ok := answers[q.Text]; ok {
		a.ID = q.ID
		return a
	}
	return agent.ErrorAnswer(q.ID, agent.Errorf(agent.CodeNoTier, "no tier can answer: intent below its threshold, no LLM, no cloud"))
}

// serve starts a Server on a free loopback port; it is stopped at cleanup,
// and Serve must return nil.
func serve(t *testing.T, h agent.Handler, o Options) (*Server, context.CancelFunc) {
	t.Helper()
	o.Listen = "127.0.0.1:0"
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after ctx ended")
		}
	})
	return s, cancel
}

func TestDescribeAdvertisesAnIntentProgram(t *testing.T) {
	s, _ := serve(t, &fakeAgent{}, Options{Languages: []string{"en", "de"}, Version: "1.2.3"})
	c := dial(t, s.Addr().String())
	for _, send := range []func(string, map[string]any){c.send, c.sendInline} {
		send("describe", nil)
		ev := c.expect("info", "")
		for _, k := range []string{"asr", "tts", "handle"} {
			if l, ok := ev.Data[k].([]any); !ok || len(l) != 0 {
				t.Errorf("info %s = %v, want an empty list", k, ev.Data[k])
			}
		}
		progs, _ := ev.Data["intent"].([]any)
		if len(progs) != 1 {
			t.Fatalf("info intent = %v, want one program", ev.Data["intent"])
		}
		p := progs[0].(map[string]any)
		if p["name"] != "hedge" || p["installed"] != true || p["version"] != "1.2.3" || p["description"] == "" {
			t.Errorf("program = %v", p)
		}
		if a, _ := p["attribution"].(map[string]any); a["name"] == "" || a["url"] == nil {
			t.Errorf("program attribution = %v", p["attribution"])
		}
		models, _ := p["models"].([]any)
		if len(models) != 1 {
			t.Fatalf("program models = %v", p["models"])
		}
		m := models[0].(map[string]any)
		if fmt.Sprint(m["languages"]) != "[en de]" || m["installed"] != true {
			t.Errorf("model = %v", m)
		}
	}
}

func TestTranscriptsAnsweredInOrder(t *testing.T) {
	f := &fakeAgent{}
	s, _ := serve(t, f, Options{})
	c := dial(t, s.Addr().String())
	cases := []struct{ text, typ, want, intent string }{
		{"turn on the kitchen light", "intent", "Kitchen lights on.", "lights_on_kitchen"},
		{"hello again", "intent", "Hello!", "greeting"},
		{"why is the sky blue", "handled", "Light scatters.", ""},
		{"and the sea", "handled", "It mirrors the sky.", ""},
		{"what is love", "not-recognized", "no tier can answer", ""},
		{"panic", "not-recognized", "hedge failed", ""},
	}
	// Pipelined: every transcript is sent before any reply is read,
	// alternating the two framings.
	for i, tc := range cases {
		send := c.send
		if i%2 == 1 {
			send = c.sendInline
		}
		send("transcript", map[string]any{"text": tc.text, "language": "en"})
	}
	for _, tc := range cases {
		ev := c.expect(tc.typ, tc.want)
		if tc.typ != "intent" {
			continue
		}
		if ev.Data["name"] != tc.intent {
			t.Errorf("%q: intent name %v, want %s", tc.text, ev.Data["name"], tc.intent)
		}
		if l, ok := ev.Data["entities"].([]any); !ok || len(l) != 0 {
			t.Errorf("%q: entities %v, want an empty list (answers carry no slots)", tc.text, ev.Data["entities"])
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, q := range f.queries {
		if q.Text != cases[i].text || q.Transport != "wyoming" || q.Caller != "127.0.0.1" || q.Prefer != agent.PreferAuto || q.ID == "" {
			t.Errorf("query %d = %+v", i, q)
		}
	}
}

func TestRecognizeIsATranscriptToo(t *testing.T) {
	s, _ := serve(t, &fakeAgent{}, Options{})
	c := dial(t, s.Addr().String())
	c.send("recognize", map[string]any{"text": "turn on the kitchen light"})
	c.expect("intent", "Kitchen lights on.")
}

// TestBadInputKeepsServing: each bad event gets its outcome, and the
// connection answers the next good one.
func TestBadInputKeepsServing(t *testing.T) {
	s, _ := serve(t, &fakeAgent{}, Options{MaxTextBytes: 64, MaxPayloadBytes: 32})
	c := dial(t, s.Addr().String())
	long := strings.Repeat("x", 4096)
	cases := []struct {
		name, raw, typ, code string
	}{
		{"not JSON", "hello hedge\n", "error", "bad_request"},
		{"a JSON list", "[1,2]\n", "error", "bad_request"},
		{"no type", `{"data":{"text":"hi"}}` + "\n", "error", "bad_request"},
		{"header over the limit", `{"type":"transcript","data":{"text":"` + strings.Repeat(long, 2) + `"}}` + "\n", "error", "too_large"},
		{"data over the limit", fmt.Sprintf(`{"type":"transcript","data_length":%d}`+"\n%s", 5000, strings.Repeat("y", 5000)), "error", "too_large"},
		{"payload over the limit", `{"type":"audio-chunk","payload_length":40}` + "\n" + strings.Repeat("\x00", 40), "error", "too_large"},
		{"negative length", `{"type":"transcript","data_length":-5}` + "\n", "error", "bad_request"},
		{"data not JSON", `{"type":"transcript","data_length":5}` + "\nhello", "error", "bad_request"},
		{"no text", `{"type":"transcript","data":{"language":"en"}}` + "\n", "error", "bad_request"},
		{"text not a string", `{"type":"transcript","data":{"text":42}}` + "\n", "error", "bad_request"},
		{"empty text", `{"type":"transcript","data":{"text":""}}` + "\n", "error", "bad_request"},
		{"unknown type, ignored", `{"type":"audio-chunk","data":{"rate":16000},"payload_length":4}` + "\n\x01\x02\x03\x04", "", ""},
		{"data section of null", `{"type":"describe","data_length":4}` + "\nnull", "info", ""},
		{"ping", `{"type":"ping","data":{"text":"p1"}}` + "\n", "pong", ""},
	}
	for _, tc := range cases {
		c.raw(tc.raw)
		if tc.typ != "" {
			ev := c.expect(tc.typ, "")
			if tc.code != "" && (ev.Data["code"] != tc.code || ev.Data["text"] == "") {
				t.Errorf("%s: %v, want code %s and a text", tc.name, ev.Data, tc.code)
			}
		}
		c.send("transcript", map[string]any{"text": "turn on the kitchen light"})
		c.expect("intent", "Kitchen lights on.")
	}
	// Another connection is served all along.
	c2 := dial(t, s.Addr().String())
	c2.send("describe", nil)
	c2.expect("info", "")
}

func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		a    agent.Answer
		typ  string
		code string
	}{
		{agent.Answer{Tier: agent.TierSLM, Intent: "x", Answer: "ok"}, "intent", ""},
		{agent.Answer{Tier: agent.TierCache, CachedFrom: agent.TierSLM, Intent: "x", Answer: "ok"}, "intent", ""},
		{agent.Answer{Tier: agent.TierCache, CachedFrom: agent.TierLLM, Intent: "x", Answer: "ok"}, "handled", ""},
		{agent.Answer{Tier: agent.TierCloud, Intent: "x", Answer: "ok"}, "handled", ""},
		{agent.Answer{Tier: agent.TierLLM}, "not-recognized", ""},
		{agent.ErrorAnswer("", agent.Errorf(agent.CodeNoTier, "none")), "not-recognized", ""},
		{agent.ErrorAnswer("", agent.Errorf(agent.CodeBusy, "busy")), "not-recognized", ""},
		{agent.ErrorAnswer("", agent.Errorf(agent.CodeTooLarge, "long")), "error", "too_large"},
		{agent.ErrorAnswer("", agent.Errorf(agent.CodeBadRequest, "bad")), "error", "bad_request"},
	} {
		ev := outcome(tc.a)
		if ev.typ != tc.typ {
			t.Errorf("%+v → %s, want %s", tc.a, ev.typ, tc.typ)
		}
		if e, ok := ev.data.(errorData); ok && e.Code != tc.code {
			t.Errorf("%+v → code %s, want %s", tc.a, e.Code, tc.code)
		}
	}
}

func TestConnectionLimit(t *testing.T) {
	s, _ := serve(t, &fakeAgent{}, Options{MaxConnections: 1})
	c1 := dial(t, s.Addr().String())
	c1.send("describe", nil)
	c1.expect("info", "")
	c2 := dial(t, s.Addr().String())
	if ev := c2.expect("error", "limit"); ev.Data["code"] != "busy" {
		t.Errorf("over the limit: %v", ev.Data)
	}
	c1.send("describe", nil)
	c1.expect("info", "")
}

// TestShutdownDrains: the transcript being answered when shutdown begins
// still gets its reply, Serve returns, and nothing more is accepted.
func TestShutdownDrains(t *testing.T) {
	f := &fakeAgent{hold: make(chan struct{}), started: make(chan struct{}, 1)}
	s, err := Listen(Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, f) }()
	addr := s.Addr().String()
	c := dial(t, addr)
	c.send("transcript", map[string]any{"text": "turn on the kitchen light"})
	<-f.started
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Serve returned (%v) with a reply still owed", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(f.hold)
	c.expect("intent", "Kitchen lights on.")
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadByte(); err == nil {
		t.Error("the connection stayed open after shutdown")
	}
	if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		nc.Close()
		t.Error("a connection was accepted after shutdown")
	}
}

func TestListenFails(t *testing.T) {
	s, _ := serve(t, &fakeAgent{}, Options{})
	_, port, _ := net.SplitHostPort(s.Addr().String())
	if _, err := Listen(Options{Listen: "127.0.0.1:" + port}); err == nil || !strings.Contains(err.Error(), "wyoming") {
		t.Fatalf("second Listen on port %s: %v", port, err)
	}
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatal(err)
	}
}
