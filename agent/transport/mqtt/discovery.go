package mqtt

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Sensors are the values hedge shows in Home Assistant.
type Sensors struct {
	// LastTier is the tier of the last answer ("cache", "slm", …); "" when
	// unknown.
	LastTier string
	// EscalationRate is the fraction (0..1) of answers that went to the
	// cloud or were queued for it.
	EscalationRate float64
	// OutboxDepth is the number of escalations waiting for the link; < 0
	// when unknown.
	OutboxDepth int
	// Link is the cloud link: "up", "down" or "none"; "" when unknown.
	Link string
}

// Discovery configures Home Assistant MQTT discovery.
type Discovery struct {
	// Prefix is Home Assistant's discovery prefix ("homeassistant").
	Prefix string
	// Interval between sensor publications (30s).
	Interval time.Duration
	// Sensors reads the current values; it must not block for long. nil
	// publishes what the MQTT transport itself saw (last tier and
	// escalation rate of its own replies).
	Sensors func(ctx context.Context) Sensors
	// Version is hedge's version, shown on the device card.
	Version string
}

// haEntity is one discovered entity.
type haEntity struct {
	component, object, name, template, unit, icon, class, stateClass string
	binary                                                           bool
}

var haEntities = []haEntity{
	{component: "sensor", object: "last_tier", name: "Last tier", template: "{{ value_json.last_tier }}", icon: "mdi:layers-triple"},
	{component: "sensor", object: "escalation_rate", name: "Escalation rate", template: "{{ (value_json.escalation_rate * 100) | round(1) }}", unit: "%", icon: "mdi:cloud-upload", stateClass: "measurement"},
	{component: "sensor", object: "outbox_depth", name: "Outbox depth", template: "{{ value_json.outbox_depth }}", icon: "mdi:tray-full", stateClass: "measurement"},
	{component: "binary_sensor", object: "link", name: "Cloud link", template: "{{ value_json.link }}", class: "connectivity", binary: true},
}

// haNode is the device id usable in discovery topics: [A-Za-z0-9_-].
func haNode(device string) string {
	var b strings.Builder
	b.WriteString("hedge_")
	for _, r := range device {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// discoveryMessages returns topic → retained config payload for every
// entity.
func (tr *Transport) discoveryMessages() map[string][]byte {
	d := tr.o.Discovery
	node := haNode(tr.o.Device)
	out := make(map[string][]byte, len(haEntities))
	for _, e := range haEntities {
		cfg := map[string]any{
			"name":                  e.name,
			"unique_id":             node + "_" + e.object,
			"object_id":             node + "_" + e.object,
			"state_topic":           tr.t.sensors,
			"value_template":        e.template,
			"availability_topic":    tr.t.status,
			"payload_available":     "online",
			"payload_not_available": "offline",
			"device": map[string]any{
				"identifiers":  []string{node},
				"name":         "hedge " + tr.o.Device,
				"manufacturer": "hedge",
				"model":        "hedge edge agent",
				"sw_version":   d.Version,
			},
		}
		if e.unit != "" {
			cfg["unit_of_measurement"] = e.unit
		}
		if e.icon != "" {
			cfg["icon"] = e.icon
		}
		if e.class != "" {
			cfg["device_class"] = e.class
		}
		if e.stateClass != "" {
			cfg["state_class"] = e.stateClass
		}
		if e.binary {
			cfg["payload_on"] = "up"
			cfg["payload_off"] = "down"
		}
		b, _ := json.Marshal(cfg)
		out[d.Prefix+"/"+e.component+"/"+node+"/"+e.object+"/config"] = b
	}
	return out
}

func (tr *Transport) publishDiscovery(c paho.Client) {
	for topic, b := range tr.discoveryMessages() {
		c.Publish(topic, tr.o.QoS, true, b)
	}
	tr.publishSensors(context.Background())
}

// sensorState is the JSON published on <prefix>/<device>/sensors; unknown
// values are left out.
func sensorState(s Sensors) []byte {
	m := map[string]any{"escalation_rate": s.EscalationRate}
	if s.LastTier != "" {
		m["last_tier"] = s.LastTier
	}
	if s.OutboxDepth >= 0 {
		m["outbox_depth"] = s.OutboxDepth
	}
	if s.Link != "" {
		m["link"] = s.Link
	}
	b, _ := json.Marshal(m)
	return b
}

// SetSensors sets where Home Assistant's sensor values come from,
// replacing Discovery.Sensors; wiring calls it once the source exists. It
// is safe to call while serving.
func (tr *Transport) SetSensors(f func(ctx context.Context) Sensors) {
	tr.sensors.Store(&f)
}

func (tr *Transport) currentSensors(ctx context.Context) Sensors {
	if f := tr.sensors.Load(); f != nil && *f != nil {
		return (*f)(ctx)
	}
	if f := tr.o.Discovery.Sensors; f != nil {
		return f(ctx)
	}
	tr.sensorMu.Lock()
	defer tr.sensorMu.Unlock()
	s := Sensors{LastTier: string(tr.lastTier), OutboxDepth: -1}
	if tr.replied > 0 {
		s.EscalationRate = float64(tr.escalated) / float64(tr.replied)
	}
	return s
}

func (tr *Transport) publishSensors(ctx context.Context) {
	if !tr.client.IsConnectionOpen() {
		return
	}
	tr.client.Publish(tr.t.sensors, tr.o.QoS, true, sensorState(tr.currentSensors(ctx)))
}

func (tr *Transport) sensorLoop(ctx context.Context) {
	iv := tr.o.Discovery.Interval
	if iv <= 0 {
		iv = 30 * time.Second
	}
	tk := time.NewTicker(iv)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			tr.publishSensors(ctx)
		}
	}
}
