package config

// Cloud configures the cloud bridge. Owned by the cloud work.
type Cloud struct {
	// BaseURL of an OpenAI-compatible API; "" turns the tier off.
	BaseURL string `yaml:"base_url"`
}

func defaultCloud() Cloud { return Cloud{} }

func (c *Cloud) env() []envOverride { return nil }

func (c *Cloud) validate() []string { return nil }
