package telemetry

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// outcomeCounters exports a transport's own counters, read at scrape time,
// as one counter vector by outcome.
type outcomeCounters struct {
	desc *prometheus.Desc
	read func() map[string]int64
}

func (c *outcomeCounters) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *outcomeCounters) Collect(ch chan<- prometheus.Metric) {
	m := c.read()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(m[k]), k)
	}
}

// CountMQTT exports the MQTT transport's request counters as
// hedge_mqtt_requests_total{outcome}: received, answered, duplicates, busy,
// malformed, unanswered, store_lag, panics. read is called at every scrape
// and must be safe for concurrent use.
func (t *Telemetry) CountMQTT(read func() map[string]int64) {
	t.reg.MustRegister(&outcomeCounters{
		desc: prometheus.NewDesc("hedge_mqtt_requests_total",
			"MQTT request messages by outcome: received from the broker, answered, duplicates (answered from a stored reply), busy, malformed (error replies), unanswered (no reply topic), store_lag (reply records kept in memory only), panics (answered internal).",
			[]string{"outcome"}, nil),
		read: read,
	})
}
