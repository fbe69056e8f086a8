package transformer

import (
	"context"
	"fmt"
	"os"
	"slices"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/hedge-edge/hedge/models/slm"
)

// The input and output names of a Hugging Face encoder export.
const (
	InputIDs       = "input_ids"
	InputMask      = "attention_mask"
	InputTypeIDs   = "token_type_ids"
	OutputLastHide = "last_hidden_state"
)

// Encoder is a BERT-family ONNX encoder with its tokenizer; Embed returns
// a text's mean-pooled last hidden state. It is safe for concurrent use.
type Encoder struct {
	tok     *Tokenizer
	sess    *slm.Session
	typeIDs bool
	maxLen  int
	hidden  int
}

// LoadEncoder reads the encoder model and its tokenizer.json and creates
// the session. The model must take input_ids and attention_mask (and
// optionally token_type_ids) and give last_hidden_state [batch, seq, H].
func LoadEncoder(rt *slm.Runtime, modelPath, tokenizerPath string, maxLen int) (*Encoder, error) {
	tok, err := LoadTokenizer(tokenizerPath)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(modelPath)
	if err != nil {
		return nil, fmt.Errorf("read encoder: %w", err)
	}
	return NewEncoder(rt, data, tok, maxLen)
}

// NewEncoder creates the encoder's session from the model's bytes.
func NewEncoder(rt *slm.Runtime, model []byte, tok *Tokenizer, maxLen int) (*Encoder, error) {
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, fmt.Errorf("load encoder: %w", err)
	}
	has := func(list []ort.InputOutputInfo, name string) *ort.InputOutputInfo {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
		return nil
	}
	e := &Encoder{tok: tok, maxLen: maxLen}
	for _, n := range []string{InputIDs, InputMask} {
		if has(ins, n) == nil {
			return nil, fmt.Errorf("load encoder: the model has no input %q; a BERT-family export has input_ids and attention_mask", n)
		}
	}
	inputs := []string{InputIDs, InputMask}
	if has(ins, InputTypeIDs) != nil {
		e.typeIDs = true
		inputs = append(inputs, InputTypeIDs)
	}
	if len(ins) != len(inputs) {
		return nil, fmt.Errorf("load encoder: the model has %d inputs; want input_ids, attention_mask and optionally token_type_ids", len(ins))
	}
	out := has(outs, OutputLastHide)
	if out == nil {
		return nil, fmt.Errorf("load encoder: the model has no output %q", OutputLastHide)
	}
	if d := out.Dimensions; len(d) != 3 || d[2] <= 0 {
		return nil, fmt.Errorf("load encoder: last_hidden_state has shape %v; want [batch, sequence, hidden]", d)
	} else {
		e.hidden = int(d[2])
	}
	e.sess, err = rt.NewSession(model, inputs, []string{OutputLastHide})
	if err != nil {
		return nil, fmt.Errorf("load encoder: %w", err)
	}
	return e, nil
}

// Hidden is the size of the pooled vector.
func (e *Encoder) Hidden() int { return e.hidden }

// Tokenizer returns the encoder's tokenizer.
func (e *Encoder) Tokenizer() *Tokenizer { return e.tok }

// Close frees the session.
func (e *Encoder) Close() error { return e.sess.Close() }

// Embed returns the mean of the last hidden states over the text's tokens
// ([CLS] and [SEP] included, as sentence-transformers pool).
func (e *Encoder) Embed(ctx context.Context, text string) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids := e.tok.Encode(text, e.maxLen)
	n := int64(len(ids))
	mask := make([]int64, n)
	for i := range mask {
		mask[i] = 1
	}
	var vals []ort.Value
	for _, data := range [][]int64{ids, mask, make([]int64, n)}[:2+btoi(e.typeIDs)] {
		t, err := ort.NewTensor(ort.NewShape(1, n), data)
		if err != nil {
			return nil, fmt.Errorf("embed: %w", err)
		}
		defer t.Destroy()
		vals = append(vals, t)
	}
	outs := []ort.Value{nil}
	if err := e.sess.Run(vals, outs); err != nil {
		return nil, fmt.Errorf("embed: onnx runtime: %w", err)
	}
	defer outs[0].Destroy()
	h, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("embed: last_hidden_state is not a float tensor")
	}
	data, shape := h.GetData(), h.GetShape()
	if len(shape) != 3 || shape[1] != n || int(shape[2]) != e.hidden {
		return nil, fmt.Errorf("embed: last_hidden_state has shape %v, want [1 %d %d]", shape, n, e.hidden)
	}
	return MeanPool(data, mask, e.hidden), nil
}

// MeanPool averages the rows of states ([len(mask)][hidden]) whose mask is
// 1.
func MeanPool(states []float32, mask []int64, hidden int) []float32 {
	out := make([]float32, hidden)
	var n float32
	for i, m := range mask {
		if m == 0 {
			continue
		}
		n++
		for j, v := range states[i*hidden : i*hidden+hidden] {
			out[j] += v
		}
	}
	if n > 0 {
		for j := range out {
			out[j] /= n
		}
	}
	return slices.Clip(out)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
