package models

import (
	"net/url"
	"path"
	"strings"
)

// CatalogEntry is a model hedge knows by name: `hedge models pull NAME`
// downloads it without a URL or checksum on the command line.
type CatalogEntry struct {
	// Name is what `hedge models pull` takes and what the manifest and
	// llm.model call it.
	Name string
	// Title names the model and its quantization, e.g.
	// "Qwen2.5-0.5B-Instruct Q4_K_M".
	Title string
	// URL is the file at a pinned revision of its publisher's repository,
	// so the bytes cannot change under the checksum.
	URL string
	// SHA256 and Size are the publisher's own: the oid and size of the
	// file's Git LFS pointer at that revision.
	SHA256 string
	Size   int64
	// License is the model's licence (an SPDX id where there is one).
	License string
	// RAM is what running it takes, in bytes: the weights, a 2,048-token
	// KV cache and llama.cpp's compute buffers (docs/llm.md). hedge doctor
	// warns when the board has less.
	RAM int64
	// Boards are the board kinds it suits (platform.Kind values), smallest
	// first.
	Boards []string
}

// Catalog is a list of known models. Lookups are linear: it holds a few.
type Catalog []CatalogEntry

// Lookup returns the entry named name; a miss returns ok == false.
func (c Catalog) Lookup(name string) (CatalogEntry, bool) {
	for _, e := range c {
		if e.Name == name {
			return e, true
		}
	}
	return CatalogEntry{}, false
}

// BySHA256 returns the entry whose file has checksum sum (an installed
// model pulled by URL is still recognised); a miss returns ok == false.
func (c Catalog) BySHA256(sum string) (CatalogEntry, bool) {
	sum = strings.ToLower(sum)
	for _, e := range c {
		if e.SHA256 == sum {
			return e, true
		}
	}
	return CatalogEntry{}, false
}

// Names lists the entries' names in catalog order.
func (c Catalog) Names() []string {
	names := make([]string, len(c))
	for i, e := range c {
		names[i] = e.Name
	}
	return names
}

// PullOptions returns what Pull needs to install e under its name.
func (e CatalogEntry) PullOptions() PullOptions {
	return PullOptions{URL: e.URL, SHA256: e.SHA256, Name: e.Name}
}

// File is the name the publisher gave the file.
func (e CatalogEntry) File() string {
	if u, err := url.Parse(e.URL); err == nil {
		return path.Base(u.Path)
	}
	return ""
}

const mib = 1 << 20

// DefaultCatalog is the models hedge knows. Every checksum and size is the
// one its publisher's Git LFS pointer states at the pinned revision; where
// each was read is in docs/llm.md ("Model catalog"). A model whose
// checksum could not be confirmed is not listed.
func DefaultCatalog() Catalog {
	return Catalog{
		{
			Name:    "smollm2-360m-instruct",
			Title:   "SmolLM2-360M-Instruct Q4_K_M",
			URL:     "https://huggingface.co/bartowski/SmolLM2-360M-Instruct-GGUF/resolve/7be6f65f1db715fe5dc5a4634c0d459b4eed42ec/SmolLM2-360M-Instruct-Q4_K_M.gguf",
			SHA256:  "2fa3f013dcdd7b99f9b237717fa0b12d75bbb89984cc1274be1471a465bac9c2",
			Size:    270590880,
			License: "Apache-2.0",
			RAM:     640 * mib,
			Boards:  []string{"raspberry-pi", "raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "jetson", "generic"},
		},
		{
			Name:    "qwen2.5-0.5b-instruct",
			Title:   "Qwen2.5-0.5B-Instruct Q4_K_M",
			URL:     "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/9217f5db79a29953eb74d5343926648285ec7e67/qwen2.5-0.5b-instruct-q4_k_m.gguf",
			SHA256:  "74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db",
			Size:    491400032,
			License: "Apache-2.0",
			RAM:     1024 * mib,
			Boards:  []string{"raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "jetson", "generic"},
		},
		{
			Name:    "tinyllama-1.1b-chat",
			Title:   "TinyLlama-1.1B-Chat-v1.0 Q4_K_M",
			URL:     "https://huggingface.co/TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/resolve/52e7645ba7c309695bec7ac98f4f005b139cf465/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf",
			SHA256:  "9fecc3b3cd76bba89d504f29b616eedf7da85b96540e490ca5824d3f7d2776a0",
			Size:    668788096,
			License: "Apache-2.0",
			RAM:     1024 * mib,
			Boards:  []string{"raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "jetson", "generic"},
		},
		{
			Name:    "llama-3.2-1b-instruct",
			Title:   "Llama-3.2-1B-Instruct Q4_K_M",
			URL:     "https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/067b946cf014b7c697f3654f621d577a3e3afd1c/Llama-3.2-1B-Instruct-Q4_K_M.gguf",
			SHA256:  "6f85a640a97cf2bf5b8e764087b1e83da0fdb51d7c9fab7d0fece9385611df83",
			Size:    807694464,
			License: "Llama 3.2 Community License",
			RAM:     1280 * mib,
			Boards:  []string{"raspberry-pi-5", "jetson-orin-nano", "jetson", "generic"},
		},
	}
}
