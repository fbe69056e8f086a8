package mqtt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

func TestRequestReply(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	h := newEcho()
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}}, h)

	replies := subscribe(t, b.URL, "test/replies/#", clientOpts{})
	defaults := subscribe(t, b.URL, "hedge/"+device+"/reply/+", clientOpts{})
	c := newClient(t, b.URL, clientOpts{})

	publish(t, c, hd.tr.QueryTopic(), request("r1", "hello", "test/replies/r1"))
	m := replies.next(t, 10*time.Second)
	a := answerOf(t, m)
	if m.topic != "test/replies/r1" || a.ID != "r1" || a.Answer != "echo: hello" || a.Tier != agent.TierSLM || a.Error != nil {
		t.Fatalf("reply %s on %s", m.payload, m.topic)
	}

	// Without reply_to the reply goes to <prefix>/<device>/reply/<id>.
	publish(t, c, hd.tr.QueryTopic(), request("r2", "no reply_to", ""))
	m = defaults.next(t, 10*time.Second)
	if a := answerOf(t, m); m.topic != "hedge/dev1/reply/r2" || a.Answer != "echo: no reply_to" {
		t.Fatalf("reply %s on %s", m.payload, m.topic)
	}

	// Plain text is a request too; hedge makes its id up.
	publish(t, c, hd.tr.QueryTopic(), "what time is it")
	m = defaults.next(t, 10*time.Second)
	a = answerOf(t, m)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(a.ID) || m.topic != "hedge/dev1/reply/"+a.ID || a.Answer != "echo: what time is it" {
		t.Fatalf("plain text reply %s on %s", m.payload, m.topic)
	}

	// Status flips to offline (retained) on a clean stop.
	status := subscribe(t, b.URL, hd.tr.StatusTopic(), clientOpts{})
	status.waitPayload(t, "online", 5*time.Second)
	hd.stop(t)
	status.waitPayload(t, "offline", 10*time.Second)
	late := subscribe(t, b.URL, hd.tr.StatusTopic(), clientOpts{})
	if m := late.next(t, 5*time.Second); string(m.payload) != "offline" {
		t.Fatalf("retained status %q, want offline", m.payload)
	}
}

func TestThousandRequestsTenClients(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	h := newEcho()
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}}, h)

	const clients, each = 10, 100
	var wg sync.WaitGroup
	got := make([]map[string]int, clients)
	for i := range clients {
		c := newClient(t, b.URL, clientOpts{})
		replies := subscribeWith(t, c, fmt.Sprintf("test/c%d/#", i))
		got[i] = map[string]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range each {
				id := fmt.Sprintf("c%d-%d", i, n)
				c.Publish(hd.tr.QueryTopic(), 1, false, request(id, "q "+id, fmt.Sprintf("test/c%d/r", i)))
			}
			deadline := time.After(60 * time.Second)
			for len(got[i]) < each {
				select {
				case m := <-replies.ch:
					var a agent.Answer
					if json.Unmarshal(m.payload, &a) != nil || a.Error != nil || a.Answer != "echo: q "+a.ID {
						t.Errorf("client %d: bad reply %s", i, m.payload)
					}
					got[i][a.ID]++
				case <-deadline:
					t.Errorf("client %d: %d of %d replies", i, len(got[i]), each)
					return
				}
			}
			// Anything more would be a second reply.
			select {
			case m := <-replies.ch:
				t.Errorf("client %d: extra reply %s", i, m.payload)
			case <-time.After(300 * time.Millisecond):
			}
		}()
	}
	wg.Wait()
	for i := range clients {
		for n := range each {
			id := fmt.Sprintf("c%d-%d", i, n)
			if got[i][id] != 1 {
				t.Errorf("%s answered %d times", id, got[i][id])
			}
			if c := h.count(id); c != 1 {
				t.Errorf("%s computed %d times", id, c)
			}
		}
	}
	if h.total.Load() != clients*each {
		t.Errorf("handler ran %d times, want %d", h.total.Load(), clients*each)
	}
	st := hd.tr.Stats()
	if st.Received != clients*each || st.Answered != clients*each || st.Busy != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestBrokerRestart restarts mosquitto (persistent) while QoS 1 requests
// come at a steady 2,000 q/s: every request is answered, none busy, each computed
// once, and any redelivered reply carries the same bytes.
func TestBrokerRestart(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{Persistence: true, Extra: os.Getenv("HEDGE_TEST_MOSQ_EXTRA")})
	h := newEcho()
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}, ClientID: "hedge-restart"}, h)

	clean := false
	c := newClient(t, b.URL, clientOpts{id: "asker-restart", clean: &clean})
	replies := subscribeWith(t, c, "test/restart/#")

	// A steady 2,000 q/s (20 every 10 ms) for two seconds, the broker
	// restarted a third of the way in.
	const n, burst = 4000, 20
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n; i += burst {
			for j := i; j < i+burst; j++ {
				id := fmt.Sprintf("q%04d", j)
				c.Publish(hd.tr.QueryTopic(), 1, false, request(id, "restart "+id, "test/restart/"+id))
			}
			if i == n/3/burst*burst {
				go b.Restart()
			}
			<-tick.C
		}
	}()

	seen := map[string][]byte{}
	copies := 0
	deadline := time.After(90 * time.Second)
	for len(seen) < n {
		select {
		case m := <-replies.ch:
			a := answerOf(t, m)
			if a.Error != nil {
				t.Fatalf("error reply %s", m.payload)
			}
			if prev, ok := seen[a.ID]; ok {
				copies++
				if !bytes.Equal(prev, m.payload) {
					t.Errorf("%s answered twice with different replies:\n%s\n%s", a.ID, prev, m.payload)
				}
				continue
			}
			seen[a.ID] = m.payload
		case <-deadline:
			var missing []string
			for i := range n {
				if _, ok := seen[fmt.Sprintf("q%04d", i)]; !ok {
					missing = append(missing, fmt.Sprintf("q%04d", i))
				}
			}
			t.Fatalf("%d of %d requests answered within 90s (stats %+v); missing %v\nbroker log:\n%s", len(seen), n, hd.tr.Stats(), missing, b.Log())
		}
	}
	for i := range n {
		id := fmt.Sprintf("q%04d", i)
		if c := h.count(id); c != 1 {
			t.Errorf("%s computed %d times", id, c)
		}
	}
	if st := hd.tr.Stats(); st.Busy != 0 {
		t.Errorf("%d busy replies (stats %+v)", st.Busy, st)
	}
	t.Logf("%d requests at 2,000 q/s across a broker restart: all answered, each computed once, none busy; %d redelivered reply copies (identical); stats %+v", n, copies, hd.tr.Stats())
}

func TestDuplicateIDs(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	st := openStore(t, "")
	t.Cleanup(func() { st.Close() })
	h := newEcho()
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}, Replies: st}, h)
	c := newClient(t, b.URL, clientOpts{})
	replies := subscribeWith(t, c, "test/dup/#")

	// Sequential duplicate: answered again with the stored bytes.
	publish(t, c, hd.tr.QueryTopic(), request("d1", "first", "test/dup/a"))
	first := replies.next(t, 10*time.Second)
	publish(t, c, hd.tr.QueryTopic(), request("d1", "first", "test/dup/a"))
	second := replies.next(t, 10*time.Second)
	if !bytes.Equal(first.payload, second.payload) || h.count("d1") != 1 {
		t.Fatalf("duplicate recomputed (%d calls):\n%s\n%s", h.count("d1"), first.payload, second.payload)
	}

	// The same id from another asker (another reply_to) is another request.
	publish(t, c, hd.tr.QueryTopic(), request("d1", "other asker", "test/dup/b"))
	if a := answerOf(t, replies.next(t, 10*time.Second)); a.Answer != "echo: other asker" || h.count("d1") != 2 {
		t.Fatalf("other asker's d1: %+v, calls %d", a, h.count("d1"))
	}
	hd.stop(t)

	// Duplicates in flight at once are computed once and answered once.
	gate := make(chan struct{})
	h2 := newEcho()
	h2.gate = gate
	hd2 := serve(t, mqtt.Options{Brokers: []string{b.URL}, Replies: st}, h2)
	for range 5 {
		publish(t, c, hd2.tr.QueryTopic(), request("d2", "slow", "test/dup/c"))
	}
	waitFor(t, func() bool { return hd2.tr.Stats().Duplicates == 4 }, "4 duplicates joined the flight")
	close(gate)
	if a := answerOf(t, replies.next(t, 10*time.Second)); a.ID != "d2" || a.Answer != "echo: slow" {
		t.Fatalf("d2 reply %+v", a)
	}
	replies.none(t, 500*time.Millisecond)
	if h2.count("d2") != 1 {
		t.Fatalf("d2 computed %d times", h2.count("d2"))
	}

	// After a restart of hedge the durable store still knows d1.
	hd2.stop(t)
	h3 := newEcho()
	hd3 := serve(t, mqtt.Options{Brokers: []string{b.URL}, Replies: st}, h3)
	publish(t, c, hd3.tr.QueryTopic(), request("d1", "first", "test/dup/a"))
	third := replies.next(t, 10*time.Second)
	if !bytes.Equal(first.payload, third.payload) || h3.count("d1") != 0 {
		t.Fatalf("d1 after restart recomputed (%d):\n%s\n%s", h3.count("d1"), first.payload, third.payload)
	}
}

func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMalformedPayloads(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	h := newEcho()
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}, MaxRequestBytes: 4096}, h)
	c := newClient(t, b.URL, clientOpts{})
	defaults := subscribeWith(t, c, "hedge/dev1/reply/+")
	custom := subscribeWith(t, c, "test/mal/#")
	q := hd.tr.QueryTopic()

	cases := []struct {
		name    string
		payload []byte
		id      string // "" : generated
		code    agent.ErrorCode
		message string
		topic   string // "" : the default reply topic
	}{
		{"non-UTF-8", []byte("{\"id\":\"m1\",\"text\":\"caf\xe9\"}"), "m1", agent.CodeBadRequest, "UTF-8", ""},
		{"oversized", request("m2", strings.Repeat("x", 5000), "test/mal/2"), "m2", agent.CodeTooLarge, "limit", ""},
		{"wrong type", []byte(`{"id":"m3","text":5,"reply_to":"test/mal/3"}`), "m3", agent.CodeBadRequest, `"text"`, "test/mal/3"},
		{"unknown field", []byte(`{"id":"m4","text":"x","colour":"red"}`), "m4", agent.CodeBadRequest, "colour", ""},
		{"trailing data", []byte(`{"id":"m5","text":"x"} {"more":1}`), "m5", agent.CodeBadRequest, "after", ""},
		{"empty text", request("m6", "   ", "test/mal/6"), "m6", agent.CodeBadRequest, "empty", "test/mal/6"},
		{"truncated", []byte(`{"id":"m7","text":"x"`), "m7", agent.CodeBadRequest, "truncated", ""},
		{"truncated without id", []byte(`{"text":"x"`), "", agent.CodeBadRequest, "truncated", ""},
		{"id wrong type", []byte(`{"id":7,"text":"x","reply_to":"test/mal/8"}`), "", agent.CodeBadRequest, `"id"`, "test/mal/8"},
		{"reply_to +", request("h1", "x", "test/+/x"), "h1", agent.CodeBadRequest, "wildcard", ""},
		{"reply_to #", request("h2", "x", "#"), "h2", agent.CodeBadRequest, "wildcard", ""},
		{"reply_to $SYS", request("h3", "x", "$SYS/broker/x"), "h3", agent.CodeBadRequest, "$", ""},
		{"reply_to empty level", request("h4", "x", "a//b"), "h4", agent.CodeBadRequest, "empty topic level", ""},
		{"reply_to NUL", request("h5", "x", "a/\x00b"), "h5", agent.CodeBadRequest, "NUL", ""},
		{"reply_to control", request("h6", "x", "a/\x01b"), "h6", agent.CodeBadRequest, "U+0001", ""},
		{"reply_to over-long", request("h7", "x", strings.Repeat("a", 1025)), "h7", agent.CodeBadRequest, "1025", ""},
		{"reply_to own query", request("h8", "x", "hedge/dev1/query"), "h8", agent.CodeBadRequest, "own", ""},
		{"reply_to other query", request("h9", "x", "hedge/dev2/query"), "h9", agent.CodeBadRequest, "query", ""},
		{"reply_to non-UTF-8", []byte("{\"id\":\"h10\",\"text\":\"x\",\"reply_to\":\"a/\xff\"}"), "h10", agent.CodeBadRequest, "UTF-8", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			publish(t, c, q, tc.payload)
			src := defaults
			if tc.topic != "" {
				src = custom
			}
			m := src.next(t, 10*time.Second)
			a := answerOf(t, m)
			want := tc.topic
			if want == "" {
				want = "hedge/dev1/reply/" + a.ID
			}
			if m.topic != want {
				t.Errorf("reply on %s, want %s", m.topic, want)
			}
			if tc.id != "" && a.ID != tc.id {
				t.Errorf("reply id %q, want %q", a.ID, tc.id)
			}
			if tc.id == "" && len(a.ID) != 16 {
				t.Errorf("reply id %q, want a generated one", a.ID)
			}
			if a.Error == nil || a.Error.Code != tc.code || !strings.Contains(a.Error.Message, tc.message) {
				t.Errorf("reply %s, want %s mentioning %q", m.payload, tc.code, tc.message)
			}
		})
	}

	// Nowhere to answer: an id that cannot be a topic level and no reply_to.
	before := hd.tr.Stats().Unanswered
	publish(t, c, q, request("a/b", "x", ""))
	waitFor(t, func() bool { return hd.tr.Stats().Unanswered == before+1 }, "the unanswerable request is counted")

	// hedge is still connected and answering.
	publish(t, c, q, request("ok", "still here", "test/mal/ok"))
	if a := answerOf(t, custom.next(t, 10*time.Second)); a.Answer != "echo: still here" {
		t.Fatalf("after malformed payloads: %+v", a)
	}
	defaults.none(t, 200*time.Millisecond)
}

func TestBusy(t *testing.T) {
	// Mosquitto hands hedge up to 100 unacknowledged requests, more than one
	// worker and a queue of two can take.
	b := mqtttest.Start(t, mqtttest.Config{MaxInflight: 100})
	gate := make(chan struct{})
	h := newEcho()
	h.gate = gate
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}, Workers: 1, Queue: 2, BusyAfter: 100 * time.Millisecond}, h)
	c := newClient(t, b.URL, clientOpts{})
	replies := subscribeWith(t, c, "test/busy/#")
	// The first request holds the only worker; two more fill the queue;
	// the other seven find no room within BusyAfter, one after the other.
	publish(t, c, hd.tr.QueryTopic(), request("b0", "x", "test/busy/r"))
	waitFor(t, func() bool { return h.total.Load() == 1 }, "the worker holds the first request")
	for i := 1; i < 10; i++ {
		publish(t, c, hd.tr.QueryTopic(), request(fmt.Sprintf("b%d", i), "x", "test/busy/r"))
	}
	busy := 0
	for range 7 {
		a := answerOf(t, replies.next(t, 10*time.Second))
		if a.Error == nil || a.Error.Code != agent.CodeBusy {
			t.Fatalf("want busy replies while the worker is held, got %+v", a)
		}
		busy++
	}
	close(gate)
	for range 3 {
		if a := answerOf(t, replies.next(t, 10*time.Second)); a.Error != nil {
			t.Fatalf("queued request failed: %+v", a)
		}
	}
	if st := hd.tr.Stats(); st.Busy != 7 || st.Answered != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStreamingChunksInOrder(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	h := newEcho()
	for i := range 50 {
		h.tokens = append(h.tokens, fmt.Sprintf("t%02d ", i))
	}
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}}, h)
	c := newClient(t, b.URL, clientOpts{})
	replies := subscribeWith(t, c, "test/stream")
	publish(t, c, hd.tr.QueryTopic(), []byte(`{"id":"s1","text":"tell me","reply_to":"test/stream","stream":true}`))
	for i := range 50 {
		m := replies.next(t, 10*time.Second)
		var ch agent.Chunk
		dec := json.NewDecoder(bytes.NewReader(m.payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ch); err != nil {
			t.Fatalf("message %d is not a chunk: %s", i, m.payload)
		}
		if ch.ID != "s1" || ch.Seq != i+1 || ch.Delta != h.tokens[i] {
			t.Fatalf("chunk %d: %+v", i, ch)
		}
	}
	m := replies.next(t, 10*time.Second)
	if bytes.Contains(m.payload, []byte(`"delta"`)) {
		t.Fatalf("final message is a chunk: %s", m.payload)
	}
	if a := answerOf(t, m); a.ID != "s1" || a.Answer != "echo: tell me" {
		t.Fatalf("final reply %s", m.payload)
	}
}

func TestCourierDeliversLateAnswers(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	hd := serve(t, mqtt.Options{Brokers: []string{b.URL}}, newEcho())
	s := subscribe(t, b.URL, "test/late", clientOpts{})
	ctx := context.Background()
	late := agent.Answer{ID: "x1", Answer: "from the cloud", Tier: agent.TierCloud, Late: true}
	if err := hd.tr.Deliver(ctx, "test/late", late); err != nil {
		t.Fatal(err)
	}
	a := answerOf(t, s.next(t, 10*time.Second))
	if a.ID != "x1" || !a.Late || a.Tier != agent.TierCloud || a.Answer != "from the cloud" {
		t.Fatalf("late answer %+v", a)
	}
	for _, bad := range []string{"test/#", "", "$SYS/x", "hedge/dev1/query"} {
		if err := hd.tr.Deliver(ctx, bad, late); err == nil {
			t.Errorf("Deliver to %q succeeded", bad)
		}
	}
	hd.stop(t)
	if err := hd.tr.Deliver(ctx, "test/late", late); err == nil {
		t.Error("Deliver after stop succeeded")
	}
}
