package slm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// The files of a trained model directory.
const (
	FileModel      = "model.onnx"
	FileLabels     = "labels.json"
	FileFeaturizer = "featurizer.json"
	FileCalib      = "calibration.json"
	FileManifest   = "manifest.json"
)

// ErrNoModel is returned by LoadBundle when the directory holds no trained
// model (no manifest); the caller may train one.
var ErrNoModel = errors.New("no trained model")

// ErrCorruptModel is returned by LoadBundle when a file does not match its
// manifest checksum or cannot be parsed.
var ErrCorruptModel = errors.New("trained model is corrupt")

// Labels names the classes, in the model's output order. OutOfScope, when
// set, is a class of examples the device must not answer (CLINC150's oos,
// an intents file's out-of-scope examples): a query classified as it is
// reported with no intent.
type Labels struct {
	Labels     []string `json:"labels"`
	OutOfScope string   `json:"out_of_scope,omitempty"`
}

// Calibration is how the model's confidence was fitted and the acceptance
// threshold picked on held-out examples.
type Calibration struct {
	Temperature float32 `json:"temperature"`
	Threshold   float64 `json:"threshold"`
	// ThresholdRule says how Threshold was picked.
	ThresholdRule string  `json:"threshold_rule"`
	Validation    int     `json:"validation_examples"`
	Accuracy      float64 `json:"validation_accuracy"`
	ECE           float64 `json:"validation_ece"`
}

// Manifest lists a model directory's files with their sha256 and what the
// model was trained from.
type Manifest struct {
	Format string            `json:"format"`
	Files  map[string]string `json:"files"`
	// Source is the sha256 of the intents the model was trained on, Seed
	// the training seed; Encoder is "compact" or "transformer".
	Source  string `json:"source_sha256"`
	Seed    uint64 `json:"seed"`
	Encoder string `json:"encoder"`
	// EncoderModel is the sha256 of a transformer encoder's ONNX file and
	// its tokenizer.json, which the head was trained on.
	EncoderModel string `json:"encoder_sha256,omitempty"`
}

// compact reports whether the bundle is the compact model (with a
// featurizer) rather than a transformer head.
func (m Manifest) compact() bool { return m.Encoder != "transformer" }

// ManifestFormat is the Format of the manifests this hedge writes.
const ManifestFormat = "hedge-slm/1"

// Bundle is a trained model directory's content.
type Bundle struct {
	Dir         string
	Model       []byte
	Labels      Labels
	Featurizer  Featurizer
	Calibration Calibration
	Manifest    Manifest
}

// Save writes the bundle's files to dir (created if needed), each through a
// temporary file and a rename, the manifest last, so a reader never sees a
// manifest that names half-written files. The bytes depend only on b.
func (b *Bundle) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	files := map[string][]byte{FileModel: b.Model}
	parts := map[string]any{FileLabels: b.Labels, FileCalib: b.Calibration}
	if b.Manifest.compact() {
		parts[FileFeaturizer] = b.Featurizer
	}
	for name, v := range parts {
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("save model: %s: %w", name, err)
		}
		files[name] = append(data, '\n')
	}
	m := b.Manifest
	m.Format = ManifestFormat
	m.Files = map[string]string{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		m.Files[n] = hex.EncodeToString(sum[:])
		if err := writeFileAtomic(filepath.Join(dir, n), files[n]); err != nil {
			return fmt.Errorf("save model: %w", err)
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("save model: manifest: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, FileManifest), append(data, '\n')); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	b.Manifest = m
	b.Dir = dir
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadBundle reads and verifies a model directory: every file must match
// the manifest's checksum. A directory without a manifest is ErrNoModel; a
// mismatch or a bad file is ErrCorruptModel, naming the file.
func LoadBundle(dir string) (*Bundle, error) {
	data, err := os.ReadFile(filepath.Join(dir, FileManifest))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load model %s: %w (no %s)", dir, ErrNoModel, FileManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	b := &Bundle{Dir: dir}
	if err := json.Unmarshal(data, &b.Manifest); err != nil {
		return nil, fmt.Errorf("load model %s: %w: %s: %v", dir, ErrCorruptModel, FileManifest, err)
	}
	if b.Manifest.Format != ManifestFormat {
		return nil, fmt.Errorf("load model %s: %w: manifest format %q, want %q", dir, ErrCorruptModel, b.Manifest.Format, ManifestFormat)
	}
	read := func(name string) ([]byte, error) {
		want, ok := b.Manifest.Files[name]
		if !ok {
			return nil, fmt.Errorf("load model %s: %w: manifest does not list %s", dir, ErrCorruptModel, name)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("load model %s: %w: %v", dir, ErrCorruptModel, err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, fmt.Errorf("load model %s: %w: %s has sha256 %s, the manifest says %s", dir, ErrCorruptModel, name, got, want)
		}
		return data, nil
	}
	if b.Model, err = read(FileModel); err != nil {
		return nil, err
	}
	parts := map[string]any{FileLabels: &b.Labels, FileCalib: &b.Calibration}
	if b.Manifest.compact() {
		parts[FileFeaturizer] = &b.Featurizer
	}
	for name, dst := range parts {
		data, err := read(name)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, dst); err != nil {
			return nil, fmt.Errorf("load model %s: %w: %s: %v", dir, ErrCorruptModel, name, err)
		}
	}
	if len(b.Labels.Labels) == 0 {
		return nil, fmt.Errorf("load model %s: %w: %s has no labels", dir, ErrCorruptModel, FileLabels)
	}
	if err := b.Featurizer.Validate(); b.Manifest.compact() && err != nil {
		return nil, fmt.Errorf("load model %s: %w: %v", dir, ErrCorruptModel, err)
	}
	return b, nil
}
