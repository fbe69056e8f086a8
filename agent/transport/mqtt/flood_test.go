package mqtt_test

import (
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

// TestFloodBacklogAllAnswered: 2,000 QoS 1 requests wait in hedge's
// persistent session while it is stopped, and the broker restarts, so it
// hands the persisted backlog over at once when hedge is back. Each request
// takes a worker 2 ms, so the backlog takes far longer to answer than to
// arrive. Every request gets its answer: none busy, none dropped.
func TestFloodBacklogAllAnswered(t *testing.T) {
	const n = 2000
	b := mqtttest.Start(t, mqtttest.Config{Persistence: true})
	o := mqtt.Options{Brokers: []string{b.URL}, ClientID: "hedge-flood"}
	hd := serve(t, o, newEcho())
	hd.stop(t)

	c := newClient(t, b.URL, clientOpts{})
	publishAll(t, c, n, "flood")
	b.Restart()
	replies := subscribe(t, b.URL, "test/flood/#", clientOpts{})

	h := newEcho()
	h.work = 2 * time.Millisecond
	start := time.Now()
	hd = serve(t, o, h)
	got := map[string]bool{}
	for len(got) < n {
		a := answerOf(t, replies.next(t, 60*time.Second))
		if a.Error != nil {
			t.Fatalf("request %s: %s: %s (after %d answers)", a.ID, a.Error.Code, a.Error.Message, len(got))
		}
		got[a.ID] = true
	}
	t.Logf("%d queued requests answered in %s", n, time.Since(start).Round(time.Millisecond))
	if st := hd.tr.Stats(); st.Busy != 0 || st.Unanswered != 0 || st.Malformed != 0 {
		t.Errorf("stats %+v: want no busy, unanswered or malformed", st)
	}
}

// publishAll publishes n QoS 1 requests (ids prefix0…) replying to
// test/<prefix>/r, and waits until the broker has every one.
func publishAll(t *testing.T, c paho.Client, n int, prefix string) {
	t.Helper()
	toks := make([]paho.Token, n)
	for i := range n {
		toks[i] = c.Publish("hedge/"+device+"/query", 1, false, request(fmt.Sprintf("%s%d", prefix, i), "x", "test/"+prefix+"/r"))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
}

// TestPanicIsAnErrorReply: a request whose handling panics gets an
// internal error reply and is acknowledged, so the broker does not
// deliver it again after a restart; the next request is answered.
func TestPanicIsAnErrorReply(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	o := mqtt.Options{Brokers: []string{b.URL}, ClientID: "hedge-poison"}
	h := newEcho()
	h.panicOn = "poison"
	hd := serve(t, o, h)
	c := newClient(t, b.URL, clientOpts{})
	replies := subscribeWith(t, c, "test/poison/#")
	publish(t, c, hd.tr.QueryTopic(), request("p1", "poison", "test/poison/r"))
	a := answerOf(t, replies.next(t, 10*time.Second))
	if a.ID != "p1" || a.Error == nil || a.Error.Code != agent.CodeInternal {
		t.Fatalf("poisoned request: %+v, want an internal error reply", a)
	}
	publish(t, c, hd.tr.QueryTopic(), request("p2", "fine", "test/poison/r"))
	if a := answerOf(t, replies.next(t, 10*time.Second)); a.ID != "p2" || a.Error != nil {
		t.Fatalf("request after the panic: %+v", a)
	}
	// Acknowledged: a new session of the same client gets nothing again.
	hd.stop(t)
	serve(t, o, newEcho())
	replies.none(t, 500*time.Millisecond)
}
