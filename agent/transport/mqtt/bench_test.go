package mqtt_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

// fixed answers at once, like a cache hit.
type fixed struct{}

func (fixed) Handle(_ context.Context, q agent.Query, _ func(string)) agent.Answer {
	return agent.Answer{ID: q.ID, Answer: "Hello!", Tier: agent.TierCache}
}

// BenchmarkRoundTrip measures one request → reply through mosquitto on
// loopback, one request in flight at a time (latency, not throughput),
// with the real bbolt reply window.
func BenchmarkRoundTrip(b *testing.B) {
	br := mqtttest.Start(b, mqtttest.Config{})
	hd := serve(b, mqtt.Options{Brokers: []string{br.URL}}, fixed{})
	c := newClient(b, br.URL, clientOpts{})
	var mu sync.Mutex
	waiting := map[string]chan struct{}{}
	c.Subscribe("bench/rt", 1, func(_ paho.Client, m paho.Message) {
		a := answerOf(b, msg{payload: m.Payload()})
		mu.Lock()
		ch := waiting[a.ID]
		delete(waiting, a.ID)
		mu.Unlock()
		if ch != nil {
			close(ch)
		}
	}).Wait()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("%s-%d", run, i)
		ch := make(chan struct{})
		mu.Lock()
		waiting[id] = ch
		mu.Unlock()
		c.Publish(hd.tr.QueryTopic(), 1, false, request(id, "hello", "bench/rt"))
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			b.Fatalf("no reply to %s", id)
		}
	}
}
