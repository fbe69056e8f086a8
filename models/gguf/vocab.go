package gguf

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	TokenNormal      int32 = 1
	TokenUnknown     int32 = 2
	TokenControl     int32 = 3
	TokenUserDefined int32 = 4
	TokenByte        int32 = 6
)

// Vocabulary is a tokenizer as a GGUF file holds it.
type Vocabulary struct {
	// Model is tokenizer.ggml.model: "llama" (SentencePiece, with Scores)
	// or "gpt2" (byte-level BPE, with Merges).
	Model string
	// Pre is tokenizer.ggml.pre, the BPE pre-tokenizer ("llama-bpe" is
	// Llama 3's); "" writes none.
	Pre    string
	Tokens []string
	Scores []float32
	Types  []int32
	Merges []string
	// BOS and EOS are token ids; UNK is one, or -1 for none.
	BOS, EOS uint32
	UNK      int64
	AddBOS   bool
	// ChatTemplate is tokenizer.chat_template, "" for none.
	ChatTemplate string
}

// SyntheticVocab is Vocab's vocabulary of n tokens as a SentencePiece
// tokenizer: <unk> 0, <s> 1, and eos (0 means 2, </s>) the end.
func SyntheticVocab(n int, eos uint32) Vocabulary {
	if eos == 0 {
		eos = 2
	}
	tokens, scores, types := Vocab(n)
	return Vocabulary{Model: "llama", Tokens: tokens, Scores: scores, Types: types, BOS: 1, EOS: eos, UNK: 0, AddBOS: true}
}

// kvs is v's metadata.
func (v *Vocabulary) kvs() []KV {
	kvs := []KV{
		{"tokenizer.ggml.model", v.Model},
		{"tokenizer.ggml.tokens", v.Tokens},
	}
	if v.Pre != "" {
		kvs = append(kvs, KV{"tokenizer.ggml.pre", v.Pre})
	}
	if v.Scores != nil {
		kvs = append(kvs, KV{"tokenizer.ggml.scores", v.Scores})
	}
	kvs = append(kvs, KV{"tokenizer.ggml.token_type", v.Types})
	if v.Merges != nil {
		kvs = append(kvs, KV{"tokenizer.ggml.merges", v.Merges})
	}
	if v.UNK >= 0 {
		kvs = append(kvs, KV{"tokenizer.ggml.unknown_token_id", uint32(v.UNK)})
	}
	kvs = append(kvs,
		KV{"tokenizer.ggml.bos_token_id", v.BOS},
		KV{"tokenizer.ggml.eos_token_id", v.EOS},
		KV{"tokenizer.ggml.add_bos_token", v.AddBOS},
		KV{"tokenizer.ggml.add_eos_token", false},
	)
	if v.ChatTemplate != "" {
		kvs = append(kvs, KV{"tokenizer.chat_template", v.ChatTemplate})
	}
	return kvs
}

// ID returns the id of token text, or -1.
func (v *Vocabulary) ID(text string) int {
	for i, t := range v.Tokens {
		if t == text {
			return i
		}
	}
	return -1
}

// Add appends tokens of type typ (score 0) and returns the first one's id.
func (v *Vocabulary) Add(typ int32, tokens ...string) int {
	id := len(v.Tokens)
	for _, t := range tokens {
		v.Tokens = append(v.Tokens, t)
		v.Types = append(v.Types, typ)
		if v.Scores != nil {
			v.Scores = append(v.Scores, 0)
		}
	}
	return id
}
