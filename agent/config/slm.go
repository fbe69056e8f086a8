package config

import (
	"fmt"
	"strconv"
)

// SLM configures the intent classifier (models/slm): the model hedge trains
// from the intents file and runs in ONNX Runtime.
type SLM struct {
	// Enabled turns the tier on (default true).
	Enabled bool `yaml:"enabled"`
	// Encoder is "compact" (the n-gram model hedge trains itself) or
	// "transformer" (a BERT-family ONNX encoder with its tokenizer.json).
	Encoder string `yaml:"encoder"`
	// Intents is the intents file; "" uses the embedded starter set.
	Intents string `yaml:"intents"`
	// ModelDir holds trained models, one directory per intents file hash;
	// "" means <state_dir>/slm.
	ModelDir string `yaml:"model_dir"`
	// RuntimeLibrary is ONNX Runtime's shared library; "" looks beside the
	// hedge binary, then in scripts/fetch-ort.sh's cache folder.
	RuntimeLibrary string `yaml:"runtime_library"`
	// Threads is ONNX Runtime's intra-op thread count; 0 means one for
	// the compact encoder (its ops are too small to split) and the
	// platform's default for the transformer.
	Threads int `yaml:"threads"`
	// Threshold is the acceptance threshold when neither the intent nor
	// the trained model sets one.
	Threshold float64 `yaml:"threshold"`
	// Seed makes training reproducible: same intents, same seed, same model.
	Seed uint64 `yaml:"seed"`
	// Transformer configures the transformer encoder.
	Transformer SLMTransformer `yaml:"transformer"`
}

// SLMTransformer names a BERT-family encoder exported to ONNX.
type SLMTransformer struct {
	// Model is the encoder's ONNX file (inputs input_ids, attention_mask,
	// optional token_type_ids; output last_hidden_state).
	Model string `yaml:"model"`
	// Tokenizer is its tokenizer.json (WordPiece).
	Tokenizer string `yaml:"tokenizer"`
	// MaxLength bounds the tokens per query.
	MaxLength int `yaml:"max_length"`
}

func defaultSLM() SLM {
	return SLM{Enabled: true, Encoder: "compact", Threshold: 0.5, Seed: 1,
		Transformer: SLMTransformer{MaxLength: 64}}
}

func (s *SLM) env() []envOverride {
	return []envOverride{
		{"HEDGE_SLM_RUNTIME_LIBRARY", setString(&s.RuntimeLibrary)},
		{"HEDGE_SLM_INTENTS", setString(&s.Intents)},
		{"HEDGE_SLM_MODEL_DIR", setString(&s.ModelDir)},
		{"HEDGE_SLM_ENABLED", func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("must be true or false")
			}
			s.Enabled = b
			return nil
		}},
	}
}

func (s *SLM) validate() []string {
	var p []string
	switch s.Encoder {
	case "compact":
	case "transformer":
		if s.Enabled && s.Transformer.Model == "" {
			p = append(p, Problem("slm.transformer.model", `""`, "encoder transformer needs the encoder's ONNX file"))
		}
		if s.Enabled && s.Transformer.Tokenizer == "" {
			p = append(p, Problem("slm.transformer.tokenizer", `""`, "encoder transformer needs the encoder's tokenizer.json"))
		}
	default:
		p = append(p, Problem("slm.encoder", fmt.Sprintf("%q", s.Encoder), "must be compact or transformer"))
	}
	if s.Threads < 0 || s.Threads > 256 {
		p = append(p, Problem("slm.threads", s.Threads, "must be between 0 (the encoder's default) and 256"))
	}
	if !within(s.Threshold, 0, 1) || s.Threshold == 0 {
		p = append(p, Problem("slm.threshold", s.Threshold, "must be above 0 and at most 1"))
	}
	if s.Transformer.MaxLength < 8 || s.Transformer.MaxLength > 512 {
		p = append(p, Problem("slm.transformer.max_length", s.Transformer.MaxLength, "must be between 8 and 512"))
	}
	return p
}
