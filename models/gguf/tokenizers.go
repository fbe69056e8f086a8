package gguf

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Real tokenizers, for fixtures that tokenize like real models: the npm
// packages llama3-tokenizer-js (Llama 3's byte-level BPE: 128,000 tokens
// and their merges) and llama-tokenizer-js (Llama 2's SentencePiece: 32,000
// tokens and the merges that rank them) carry the vocabularies of the
// models' tokenizer.json, base64 in their JavaScript. scripts/
// fetch-tokenizers.sh unpacks them outside the repository (TokenizerDir);
// no vocabulary is committed.
const (
	Llama3TokenizerJS = "llama3-tokenizer-js@1.2.0"
	Llama2TokenizerJS = "llama-tokenizer-js@1.2.2"
)

// TokenizerDir is where scripts/fetch-tokenizers.sh unpacks package pkg
// (one of the constants above): $HEDGE_CACHE/tokenizers/PKG/package,
// HEDGE_CACHE defaulting to ~/.cache/hedge.
func TokenizerDir(pkg string) string {
	cache := os.Getenv("HEDGE_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "hedge")
	}
	return filepath.Join(cache, "tokenizers", pkg, "package")
}

// Llama 3's special tokens, ids 128000…128255, as its tokenizer.json
// lists them.
var llama3Special = func() []string {
	s := []string{"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
		"<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
		"<|eom_id|>", "<|eot_id|>", "<|python_tag|>"}
	for i := 3; i <= 247; i++ {
		s = append(s, fmt.Sprintf("<|reserved_special_token_%d|>", i))
	}
	return s
}()

// Llama3Template is the chat template of Meta's Llama 3 Instruct models
// (tokenizer_config.json's chat_template).
const Llama3Template = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"

// ChatMLTemplate is the ChatML chat template as ChatML fine-tunes of
// Llama 2 and Mistral (OpenHermes, Nous Hermes) ship it.
const ChatMLTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

// Llama3Vocab reads Llama 3's tokenizer from llama3-tokenizer-js unpacked
// in dir: the 128,000 tokens and 280,147 merges, then the 256 special
// tokens (control tokens), with Meta's instruct template. BOS is
// <|begin_of_text|>, EOS <|end_of_text|> (as the base model's config): a
// chat's end of turn, <|eot_id|>, is llama.cpp's to recognise.
func Llama3Vocab(dir string) (Vocabulary, error) {
	src, err := os.ReadFile(filepath.Join(dir, "src", "data-converted.js"))
	if err != nil {
		return Vocabulary{}, fmt.Errorf("read llama 3 tokenizer: %w", err)
	}
	tokens, packed, err := jsVocab(src)
	if err != nil {
		return Vocabulary{}, fmt.Errorf("read llama 3 tokenizer: %w", err)
	}
	ids, err := unpack17(packed, len(tokens))
	if err != nil {
		return Vocabulary{}, fmt.Errorf("read llama 3 tokenizer: merges: %w", err)
	}
	v := Vocabulary{Model: "gpt2", Pre: "llama-bpe", Tokens: tokens, UNK: -1, AddBOS: true, ChatTemplate: Llama3Template}
	for i := 0; i+1 < len(ids); i += 2 {
		v.Merges = append(v.Merges, tokens[ids[i]]+" "+tokens[ids[i+1]])
	}
	v.Types = make([]int32, len(tokens))
	for i := range v.Types {
		v.Types[i] = TokenNormal
	}
	v.BOS = uint32(v.Add(TokenControl, llama3Special...))
	v.EOS = v.BOS + 1
	return v, nil
}

// Llama2Vocab reads Llama 2's SentencePiece tokenizer from
// llama-tokenizer-js unpacked in dir: 32,000 pieces (<unk>, <s>, </s>, 256
// byte pieces, then the rest). A piece's score, which llama.cpp merges by,
// comes from the rank of the merge that makes it, as SentencePiece's BPE
// models order them; no chat template.
func Llama2Vocab(dir string) (Vocabulary, error) {
	src, err := os.ReadFile(filepath.Join(dir, "llama-tokenizer.js"))
	if err != nil {
		return Vocabulary{}, fmt.Errorf("read llama 2 tokenizer: %w", err)
	}
	tokens, packed, err := jsVocab(src)
	if err != nil {
		return Vocabulary{}, fmt.Errorf("read llama 2 tokenizer: %w", err)
	}
	if len(tokens) < 259 || tokens[0] != "<unk>" || tokens[1] != "<s>" || tokens[2] != "</s>" || len(packed)%4 != 0 {
		return Vocabulary{}, fmt.Errorf("read llama 2 tokenizer: %w: not Llama 2's layout", ErrCorrupt)
	}
	v := Vocabulary{Model: "llama", Tokens: tokens, UNK: 0, BOS: 1, EOS: 2, AddBOS: true}
	v.Types = make([]int32, len(tokens))
	v.Scores = make([]float32, len(tokens))
	v.Types[0], v.Types[1], v.Types[2] = TokenUnknown, TokenControl, TokenControl
	for i := 3; i < 259; i++ {
		v.Types[i] = TokenByte
	}
	index := make(map[string]int, len(tokens))
	for i := 259; i < len(tokens); i++ {
		v.Types[i] = TokenNormal
		v.Scores[i] = -float32(len(packed)/4 + i) // below every merged piece
		index[tokens[i]] = i
	}
	for r := 0; r < len(packed)/4; r++ {
		a, b := binary.LittleEndian.Uint16(packed[4*r:]), binary.LittleEndian.Uint16(packed[4*r+2:])
		if int(a) >= len(tokens) || int(b) >= len(tokens) {
			return Vocabulary{}, fmt.Errorf("read llama 2 tokenizer: %w: merge %d names token %d", ErrCorrupt, r, max(a, b))
		}
		if id, ok := index[tokens[a]+tokens[b]]; ok && v.Scores[id] < -float32(r) {
			v.Scores[id] = -float32(r)
		}
	}
	return v, nil
}

// jsVocab finds the base64 strings llama_vocab_base64 (the tokens, one a
// line) and llama_merges_binary in a tokenizer-js source file.
func jsVocab(src []byte) (tokens []string, merges []byte, err error) {
	str := func(name string) ([]byte, error) {
		_, rest, ok := bytes.Cut(src, []byte("const "+name+` = "`))
		if !ok {
			return nil, fmt.Errorf("%w: no %s", ErrCorrupt, name)
		}
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			return nil, fmt.Errorf("%w: %s does not end", ErrCorrupt, name)
		}
		b, err := base64.StdEncoding.DecodeString(string(rest[:end]))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
		}
		return b, nil
	}
	vocab, err := str("llama_vocab_base64")
	if err != nil {
		return nil, nil, err
	}
	if merges, err = str("llama_merges_binary"); err != nil {
		return nil, nil, err
	}
	return strings.Split(string(vocab), "\n"), merges, nil
}

// unpack17 reads b as big-endian 17-bit token ids (the trailing bits that
// make no whole id are padding); every id must be below n.
func unpack17(b []byte, n int) ([]int, error) {
	var ids []int
	for bit := 0; bit+17 <= len(b)*8; bit += 17 {
		id := 0
		for k := bit; k < bit+17; k++ {
			id = id<<1 | int(b[k/8]>>(7-k%8)&1)
		}
		if id >= n {
			return nil, fmt.Errorf("%w: token id %d of %d", ErrCorrupt, id, n)
		}
		ids = append(ids, id)
	}
	if len(ids)%2 != 0 {
		ids = ids[:len(ids)-1]
	}
	return ids, nil
}

// WithChatML returns v with ChatML's two tokens added, <|im_end|> then
// <|im_start|> (as OpenHermes adds them to Llama 2's and Mistral's 32,000),
// of token type typ, and the ChatML template. EOS stays v's: the end of a
// turn, <|im_end|>, is llama.cpp's to recognise.
func (v Vocabulary) WithChatML(typ int32) Vocabulary {
	v.Tokens = slices.Clone(v.Tokens)
	v.Types = slices.Clone(v.Types)
	v.Scores = slices.Clone(v.Scores)
	v.Add(typ, "<|im_end|>", "<|im_start|>")
	v.ChatTemplate = ChatMLTemplate
	return v
}
