package config

// SLM configures the intent classifier (models/slm). Owned by the SLM work.
type SLM struct {
	// Enabled turns the tier on; with no model it stays off.
	Enabled bool `yaml:"enabled"`
}

func defaultSLM() SLM { return SLM{} }

func (s *SLM) env() []envOverride { return nil }

func (s *SLM) validate() []string { return nil }
