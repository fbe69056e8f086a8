package config

// HTTP configures the loopback HTTP API and dashboard. Owned by the HTTP work.
type HTTP struct {
	Enabled bool `yaml:"enabled"`
}

func defaultHTTP() HTTP { return HTTP{} }

func (h *HTTP) env() []envOverride { return nil }

func (h *HTTP) validate() []string { return nil }
