package config

// MQTT configures the MQTT transport. Owned by the MQTT work.
type MQTT struct {
	Enabled bool `yaml:"enabled"`
}

func defaultMQTT() MQTT { return MQTT{} }

func (m *MQTT) env() []envOverride { return nil }

func (m *MQTT) validate() []string { return nil }
