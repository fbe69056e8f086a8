package config

import "time"

// Conversation configures conversation memory (agent/conversation): what a
// conversation keeps, and for how long after its last turn.
type Conversation struct {
	Enabled bool `yaml:"enabled"`
	// MaxTurns and MaxBytes bound a conversation; its oldest turns go
	// first.
	MaxTurns int `yaml:"max_turns"`
	MaxBytes int `yaml:"max_bytes"`
	// IdleTTL is how long a conversation is kept after its last turn.
	IdleTTL time.Duration `yaml:"idle_ttl"`
}

func defaultConversation() Conversation {
	return Conversation{Enabled: true, MaxTurns: 20, MaxBytes: 32 << 10, IdleTTL: 24 * time.Hour}
}

func (c *Conversation) validate() []string {
	var p []string
	bad := func(key string, val any, why string) { p = append(p, Problem("conversation."+key, val, why)) }
	if c.MaxTurns < 1 || c.MaxTurns > 1000 {
		bad("max_turns", c.MaxTurns, "must be between 1 and 1000")
	}
	if c.MaxBytes < 1024 || c.MaxBytes > 16<<20 {
		bad("max_bytes", c.MaxBytes, "must be between 1024 and 16777216")
	}
	if c.IdleTTL < time.Minute {
		bad("idle_ttl", c.IdleTTL, "must be at least 1m")
	}
	return p
}
