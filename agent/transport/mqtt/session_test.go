package mqtt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

// TestRequestsWhileHedgeIsDown: requests published while hedge is away
// wait in its persistent session and are answered when it is back.
func TestRequestsWhileHedgeIsDown(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	st := openStore(t, "")
	t.Cleanup(func() { st.Close() })
	o := mqtt.Options{Brokers: []string{b.URL}, ClientID: "hedge-away", Replies: st}
	hd := serve(t, o, newEcho())
	hd.stop(t)

	c := newClient(t, b.URL, clientOpts{})
	replies := subscribeWith(t, c, "test/away/#")
	for i := range 50 {
		publish(t, c, "hedge/dev1/query", request(fmt.Sprintf("w%d", i), "while away", "test/away/r"))
	}
	replies.none(t, 300*time.Millisecond)

	h := newEcho()
	serve(t, o, h)
	got := map[string]bool{}
	for range 50 {
		a := answerOf(t, replies.next(t, 15*time.Second))
		if a.Error != nil || a.Answer != "echo: while away" {
			t.Fatalf("reply %+v", a)
		}
		got[a.ID] = true
	}
	if len(got) != 50 {
		t.Fatalf("%d distinct requests answered, want 50", len(got))
	}
}

// proxy forwards loopback TCP to the broker, so a test can cut hedge's
// connection the way a network failure would (no DISCONNECT packet).
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	go p.accept()
	t.Cleanup(func() { l.Close(); p.cut() })
	return p
}

func (p *proxy) url() string { return "tcp://" + p.l.Addr().String() }

func (p *proxy) accept() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { io.Copy(out, in); out.Close() }()
		go func() { io.Copy(in, out); in.Close() }()
	}
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestLastWillAndReconnect: a lost connection makes the broker publish the
// last will (offline); hedge reconnects, says online again and answers.
func TestLastWillAndReconnect(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	px := newProxy(t, b.Addr)
	h := newEcho()
	hd := serve(t, mqtt.Options{Brokers: []string{px.url()}}, h)
	link := make(chan bool, 16)
	hd.tr.SetLinkHook(func(up bool) { link <- up })
	status := subscribe(t, b.URL, hd.tr.StatusTopic(), clientOpts{})
	status.waitPayload(t, "online", 5*time.Second)

	px.cut()
	status.waitPayload(t, "offline", 10*time.Second)
	status.waitPayload(t, "online", 15*time.Second)
	// Readiness heard both: the link went down, then up again.
	var seen []bool
	for len(seen) < 2 || !seen[len(seen)-1] {
		select {
		case up := <-link:
			if len(seen) == 0 && up {
				continue // the first connect, if it came after the hook
			}
			seen = append(seen, up)
		case <-time.After(10 * time.Second):
			t.Fatalf("link hook heard %v, want false then true", seen)
		}
	}
	if seen[0] {
		t.Fatalf("link hook heard %v, want false first", seen)
	}

	c := newClient(t, b.URL, clientOpts{})
	replies := subscribeWith(t, c, "test/will")
	publish(t, c, hd.tr.QueryTopic(), request("after", "back again", "test/will"))
	if a := answerOf(t, replies.next(t, 10*time.Second)); a.Answer != "echo: back again" {
		t.Fatalf("after reconnect %+v", a)
	}
}

func TestHomeAssistantDiscovery(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	var mu sync.Mutex
	outbox := 3
	sensors := func(context.Context) mqtt.Sensors {
		mu.Lock()
		defer mu.Unlock()
		return mqtt.Sensors{LastTier: "cache", EscalationRate: 0.25, OutboxDepth: outbox, Link: "down"}
	}
	ha := subscribe(t, b.URL, "homeassistant/#", clientOpts{})
	state := subscribe(t, b.URL, "hedge/dev1/sensors", clientOpts{})
	serve(t, mqtt.Options{Brokers: []string{b.URL}, Discovery: &mqtt.Discovery{Prefix: "homeassistant", Interval: time.Second, Sensors: sensors, Version: "test"}}, newEcho())

	configs := map[string]map[string]any{}
	for range 4 {
		m := ha.next(t, 10*time.Second)
		var cfg map[string]any
		if err := json.Unmarshal(m.payload, &cfg); err != nil {
			t.Fatalf("discovery %s: %v", m.topic, err)
		}
		configs[m.topic] = cfg
	}
	for _, topic := range []string{
		"homeassistant/sensor/hedge_dev1/last_tier/config",
		"homeassistant/sensor/hedge_dev1/escalation_rate/config",
		"homeassistant/sensor/hedge_dev1/outbox_depth/config",
		"homeassistant/binary_sensor/hedge_dev1/link/config",
	} {
		cfg, ok := configs[topic]
		if !ok {
			t.Errorf("no discovery config on %s (got %v)", topic, keys(configs))
			continue
		}
		if cfg["availability_topic"] != "hedge/dev1/status" || cfg["state_topic"] != "hedge/dev1/sensors" || cfg["unique_id"] == "" {
			t.Errorf("%s: %v", topic, cfg)
		}
	}
	m := state.next(t, 10*time.Second)
	var s map[string]any
	if err := json.Unmarshal(m.payload, &s); err != nil {
		t.Fatal(err)
	}
	if s["last_tier"] != "cache" || s["escalation_rate"] != 0.25 || s["outbox_depth"] != 3.0 || s["link"] != "down" {
		t.Fatalf("sensor state %s", m.payload)
	}
	mu.Lock()
	outbox = 7
	mu.Unlock()
	for {
		m := state.next(t, 10*time.Second)
		if strings.Contains(string(m.payload), `"outbox_depth":7`) {
			break
		}
	}
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestShutdownFinishesInFlightAndLeavesQueued: on stop the request being
// answered gets its reply; the queued ones stay with the broker and are
// answered by the next run.
func TestShutdownFinishesInFlightAndLeavesQueued(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config{})
	st := openStore(t, "")
	t.Cleanup(func() { st.Close() })
	o := mqtt.Options{Brokers: []string{b.URL}, ClientID: "hedge-drain", Replies: st, Workers: 1}
	gate := make(chan struct{})
	h := newEcho()
	h.gate = gate
	hd := serve(t, o, h)
	c := newClient(t, b.URL, clientOpts{})
	replies := subscribeWith(t, c, "test/drain")
	for _, id := range []string{"r1", "r2", "r3"} {
		publish(t, c, hd.tr.QueryTopic(), request(id, "drain "+id, "test/drain"))
	}
	waitFor(t, func() bool { return hd.tr.Stats().Received == 3 && h.total.Load() == 1 }, "r1 held, r2 and r3 queued")
	stopped := make(chan struct{})
	go func() { hd.stop(t); close(stopped) }()
	time.Sleep(100 * time.Millisecond)
	close(gate)
	<-stopped
	if a := answerOf(t, replies.next(t, 10*time.Second)); a.ID != "r1" || a.Error != nil {
		t.Fatalf("in-flight request: %+v", a)
	}
	replies.none(t, 300*time.Millisecond)
	if h.count("r2") != 0 || h.count("r3") != 0 {
		t.Fatal("queued requests were computed during shutdown")
	}

	h2 := newEcho()
	serve(t, o, h2)
	got := map[string]bool{}
	for range 2 {
		a := answerOf(t, replies.next(t, 15*time.Second))
		if a.Error != nil {
			t.Fatalf("after restart: %+v", a)
		}
		got[a.ID] = true
	}
	if !got["r2"] || !got["r3"] {
		t.Fatalf("after restart answered %v, want r2 and r3", got)
	}
	if h2.count("r1") != 0 {
		t.Fatal("r1 was computed again after restart")
	}
}
