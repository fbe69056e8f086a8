package llm

import (
	"slices"

	"github.com/hedge-edge/hedge/agent"
)

// DefaultKVCacheBytes is Options.KVCacheBytes's default: room for the
// saved states of a few conversations of a 1B model (TinyLlama holds
// 22.5 KiB per token, so 64 MiB is some 2,900 tokens).
const DefaultKVCacheBytes = 64 << 20

// kvCache is what the context's memory holds between requests, so that a
// follow-up turn evaluates only what is new (docs/llm.md, "KV cache
// reuse"). The memory holds one conversation's tokens, the live ones; the
// states of other recent conversations wait in saved, copies of their KV
// cells in Go memory, at most limit bytes, the least recently used going
// first.
//
// Every state belongs to one key (kvKey: the transport, the caller and the
// conversation), and a request reuses only its own key's state: what
// another conversation evaluated is never used, not even a prefix the two
// share (its speed would tell one caller what another asked). A request's
// tokens are a function of the request alone, and reuse only skips
// evaluating those of them that the memory already holds at the same
// positions, so an answer does not depend on what was cached.
//
// Only the holder of Generator.turn touches it.
type kvCache struct {
	off   bool
	limit int64
	key   string
	toks  []int32 // the live tokens: positions 0…len-1 of sequence 0
	saved []savedState
	bytes int64
	// answers are the answers of recent keys as the model produced them,
	// the most recently used key last (kept with NoKVReuse too, so that a
	// prompt never depends on whether reuse is on).
	answers []keyAnswers
}

// keyAnswers are one key's answers, oldest first: each reply's text as
// Generate returned it, and the text of every token sampled for it, which
// the reply may lack leading whitespace of.
type keyAnswers struct {
	key     string
	answers [][2]string // reply, raw
	last    *spoken     // the key's last exchange (chat.prev)
}

// Bounds of kvCache.answers: keys, and answers a key (a conversation
// holds at most conversation.max_turns, 20 by default).
const (
	maxAnswerKeys = 64
	maxAnswers    = 32
)

// savedState is one conversation's state out of the context.
type savedState struct {
	key  string
	toks []int32
	data []byte
}

// kvKey is the key of q's state: who asked, over what, in which
// conversation.
func kvKey(q agent.Query) string {
	return q.Transport + "\x00" + q.Caller + "\x00" + q.Conversation
}

// reset forgets the states (the context is gone or was cleared).
func (kv *kvCache) reset() {
	kv.key, kv.toks, kv.saved, kv.bytes = "", nil, nil, 0
}

// answered records key's answer: reply as Generate returns it, raw the
// text of the tokens sampled for it, whether a stop string cut the reply
// short of them, and the exchange as the model saw it.
func (kv *kvCache) answered(key, reply, raw string, cut bool, last spoken) {
	var ka keyAnswers
	if i := slices.IndexFunc(kv.answers, func(a keyAnswers) bool { return a.key == key }); i >= 0 {
		ka = kv.answers[i]
		kv.answers = slices.Delete(kv.answers, i, i+1)
	} else if len(kv.answers) == maxAnswerKeys {
		kv.answers = slices.Delete(kv.answers, 0, 1)
	}
	ka.key, ka.last = key, &last
	if reply != raw && !cut {
		if len(ka.answers) == maxAnswers {
			ka.answers = slices.Delete(ka.answers, 0, 1)
		}
		ka.answers = append(ka.answers, [2]string{reply, raw})
	}
	kv.answers = append(kv.answers, ka)
}

// lastSpoken is key's last exchange as the model saw it, or nil.
func (kv *kvCache) lastSpoken(key string) *spoken {
	if i := slices.IndexFunc(kv.answers, func(a keyAnswers) bool { return a.key == key }); i >= 0 {
		return kv.answers[i].last
	}
	return nil
}

// asProduced returns turns with each answer that is one of key's replies
// as the model produced it: with the leading whitespace the reply leaves
// out, and the bytes it made valid UTF-8 as they were. The model read its
// own tokens, a space and all (SentencePiece's "▁Sure"); a history
// without them tokenizes another way from there on, and the KV cache's
// prefix would end inside the answer. A reply cut by a stop string is not
// recorded (answered): it stays as it is, the rest unsaid.
func (kv *kvCache) asProduced(key string, turns []agent.Turn) []agent.Turn {
	i := slices.IndexFunc(kv.answers, func(a keyAnswers) bool { return a.key == key })
	if i < 0 || len(turns) == 0 {
		return turns
	}
	out := slices.Clone(turns)
	for t := range out {
		for _, a := range kv.answers[i].answers {
			if a[0] == out[t].Answer {
				out[t].Answer = a[1]
				break
			}
		}
	}
	return out
}

// prepare makes c's memory hold the longest prefix of toks that key's
// state has, and returns its length: the tokens from there on are to be
// evaluated. At least the last token always is (its logits are needed).
func (kv *kvCache) prepare(c *cContext, key string, toks []int32) int {
	if kv.off {
		c.clear()
		return 0
	}
	if kv.key != key {
		kv.switchTo(c, key)
	}
	n := commonPrefix(kv.toks, toks)
	n = min(n, len(toks)-1)
	if n > 0 && !c.keepPrefix(n, len(kv.toks)) {
		n = 0
	}
	if n == 0 {
		c.clear()
	}
	kv.toks = append(kv.toks[:n:n], toks[n:]...)
	return n
}

// evaluated records that the memory now holds tok after the live tokens.
func (kv *kvCache) evaluated(tok int32) {
	if !kv.off {
		kv.toks = append(kv.toks, tok)
	}
}

// failed records that a decode failed or was aborted: llama.cpp keeps
// the batches it evaluated before and drops the rest, so the live tokens
// are those up to the memory's last position.
func (kv *kvCache) failed(c *cContext) {
	n := c.posMax() + 1
	if n < 0 || n > len(kv.toks) {
		n = 0 // not what it should hold: nothing of it is reused
	}
	kv.toks = kv.toks[:n]
}

// invalid records that the memory's contents are unknown: nothing of it
// is reused.
func (kv *kvCache) invalid() { kv.toks = nil }

// switchTo makes key's saved state the live one (or an empty memory) and
// saves the live state, if it fits the limit, dropping the least recently
// used states to make room.
func (kv *kvCache) switchTo(c *cContext, key string) {
	var want savedState
	if i := slices.IndexFunc(kv.saved, func(s savedState) bool { return s.key == key }); i >= 0 {
		want = kv.saved[i]
		kv.saved = slices.Delete(kv.saved, i, i+1)
		kv.bytes -= int64(len(want.data))
	}
	kv.stash(c)
	kv.key, kv.toks = key, nil
	if want.data != nil && c.loadSeq(want.data) {
		kv.toks = want.toks
		return
	}
	c.clear()
}

// stash copies the live state into saved, if it fits the limit.
func (kv *kvCache) stash(c *cContext) {
	if len(kv.toks) == 0 || kv.limit <= 0 {
		return
	}
	data := c.saveSeq(kv.limit)
	if data == nil {
		return
	}
	size := int64(len(data))
	for len(kv.saved) > 0 && kv.bytes+size > kv.limit {
		kv.bytes -= int64(len(kv.saved[0].data))
		kv.saved = slices.Delete(kv.saved, 0, 1)
	}
	kv.saved = append(kv.saved, savedState{key: kv.key, toks: kv.toks, data: data})
	kv.bytes += size
}

func commonPrefix(a, b []int32) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
