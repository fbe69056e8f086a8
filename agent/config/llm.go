package config

// LLM configures the local llama.cpp tier (models/llm). Owned by the LLM work.
type LLM struct {
	// Model is a GGUF path or a name from the models manifest; "" turns the tier off.
	Model string `yaml:"model"`
}

func defaultLLM() LLM { return LLM{} }

func (l *LLM) env() []envOverride {
	return []envOverride{{"HEDGE_LLM_MODEL", setString(&l.Model)}}
}

func (l *LLM) validate() []string { return nil }
