// Package models keeps the model files hedge runs: a folder
// (<state_dir>/models) and its manifest.json listing each model's name,
// file, sha256, size and source. Pull downloads a model with resume and
// installs it only when its checksum matches; Verify re-hashes installed
// files; Resolve turns a config value (a path or a manifest name) into a
// file path.
package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ManifestFile is the manifest's file name inside the models folder.
const ManifestFile = "manifest.json"

// ErrNotFound is returned when a name is not in the manifest.
var ErrNotFound = errors.New("model not in the manifest")

// ErrChecksum is returned (wrapped with both sums) when a file's sha256 is
// not the one expected. A pull that fails this way installs nothing.
var ErrChecksum = errors.New("sha256 mismatch")

// Entry is one installed model.
type Entry struct {
	Name   string `json:"name"`
	File   string `json:"file"` // relative to the models folder
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Source string `json:"source,omitempty"`
	// Added is when the model was installed.
	Added time.Time `json:"added"`
}

type manifest struct {
	Version int     `json:"version"`
	Models  []Entry `json:"models"`
}

// Store is a models folder. Its methods are safe for concurrent use, also
// across processes (the daemon and `hedge models …` share the folder):
// every manifest change happens under an exclusive file lock.
type Store struct {
	dir string
}

// Open returns the store of folder dir (created on first write).
func Open(dir string) *Store { return &Store{dir: dir} }

// Dir is the models folder.
func (s *Store) Dir() string { return s.dir }

// Path is the absolute path of e's file.
func (s *Store) Path(e Entry) string { return filepath.Join(s.dir, e.File) }

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidName reports whether name may name a model: 1-128 letters, digits,
// '.', '_' or '-', starting with a letter or digit (it becomes a file name).
func ValidName(name string) bool { return nameRe.MatchString(name) }

// List returns the installed models by name. A missing manifest is an
// empty list.
func (s *Store) List() ([]Entry, error) {
	m, err := s.read()
	if err != nil {
		return nil, err
	}
	return m.Models, nil
}

// Get returns the entry named name; a missing one returns ok == false.
func (s *Store) Get(name string) (e Entry, ok bool, err error) {
	m, err := s.read()
	if err != nil {
		return Entry{}, false, err
	}
	for _, e := range m.Models {
		if e.Name == name {
			return e, true, nil
		}
	}
	return Entry{}, false, nil
}

// Resolve turns ref, a file path or a manifest name, into a file path and
// the model's name. A ref with a path separator or a ".gguf" suffix, or
// naming an existing file, is a path; otherwise it must be in the manifest.
func (s *Store) Resolve(ref string) (path, name string, err error) {
	if ref == "" {
		return "", "", errors.New("resolve model: empty reference")
	}
	isPath := strings.ContainsRune(ref, os.PathSeparator) || strings.HasSuffix(ref, ".gguf")
	if !isPath {
		e, ok, err := s.Get(ref)
		if err != nil {
			return "", "", err
		}
		if ok {
			return s.Path(e), e.Name, nil
		}
		if _, err := os.Stat(ref); err != nil {
			how := "hedge models pull URL --sha256 HEX --name " + ref
			if _, known := DefaultCatalog().Lookup(ref); known {
				how = "hedge models pull " + ref
			}
			return "", "", fmt.Errorf("resolve model %q: %w in %s (pull it with `%s`, or give a file path)", ref, ErrNotFound, filepath.Join(s.dir, ManifestFile), how)
		}
	}
	abs, err := filepath.Abs(ref)
	if err != nil {
		return "", "", fmt.Errorf("resolve model %q: %w", ref, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", "", fmt.Errorf("resolve model: %w", err)
	}
	return abs, strings.TrimSuffix(filepath.Base(abs), ".gguf"), nil
}

// Remove deletes the model named name: its manifest entry first, then its
// file.
func (s *Store) Remove(name string) error {
	var file string
	err := s.update(func(m *manifest) error {
		for i, e := range m.Models {
			if e.Name == name {
				file = e.File
				m.Models = append(m.Models[:i], m.Models[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("remove %q: %w", name, ErrNotFound)
	})
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.dir, file)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}

func (s *Store) read() (manifest, error) {
	var m manifest
	data, err := os.ReadFile(filepath.Join(s.dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return manifest{Version: 1}, nil
	}
	if err != nil {
		return m, fmt.Errorf("read model manifest: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("read model manifest %s: %w", filepath.Join(s.dir, ManifestFile), err)
	}
	return m, nil
}

// update applies fn to the manifest under the folder's lock and writes the
// result atomically (temporary file, fsync, rename).
func (s *Store) update(fn func(*manifest) error) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	m, err := s.read()
	if err != nil {
		return err
	}
	if err := fn(&m); err != nil {
		return err
	}
	m.Version = 1
	sort.Slice(m.Models, func(i, j int) bool { return m.Models[i].Name < m.Models[j].Name })
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, ManifestFile), append(data, '\n'))
}

// lock takes the folder's exclusive lock (flock on .lock).
func (s *Store) lock() (unlock func(), err error) {
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return nil, fmt.Errorf("models folder: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("models folder lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("models folder lock: %w", err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

func writeAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".manifest-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Chmod(tmp.Name(), 0o640); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
