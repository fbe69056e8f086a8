package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// PullOptions says what to download.
type PullOptions struct {
	URL string
	// SHA256 is the expected checksum, 64 hex digits (required: a model
	// without a known checksum is not installed).
	SHA256 string
	// Name in the manifest; default: the URL's file name without ".gguf".
	Name string
	// Client defaults to a client without a total timeout (models are
	// large); ctx bounds the transfer.
	Client *http.Client
	// Progress, when set, is called as bytes arrive (done includes bytes
	// resumed from an earlier attempt; total is -1 when unknown).
	Progress func(done, total int64)
}

// Pull downloads opts.URL into the models folder and records it in the
// manifest. The bytes go to "<sha256>.part"; an interrupted pull leaves
// that file, and the next pull of the same checksum resumes it with an
// HTTP Range request. Only a complete file whose sha256 matches is renamed
// into place (atomically) and listed; a mismatch deletes the partial file
// and installs nothing. Pulling a model that is already installed with the
// same checksum does nothing.
func (s *Store) Pull(ctx context.Context, opts PullOptions) (Entry, error) {
	want := strings.ToLower(strings.TrimSpace(opts.SHA256))
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		return Entry{}, fmt.Errorf("pull: --sha256 %q: must be 64 hex digits", opts.SHA256)
	}
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Entry{}, fmt.Errorf("pull: url %q: must be an http(s) URL", opts.URL)
	}
	name := opts.Name
	if name == "" {
		name = strings.TrimSuffix(path.Base(u.Path), ".gguf")
	}
	if !ValidName(name) {
		return Entry{}, fmt.Errorf("pull: name %q: must be 1-128 letters, digits, '.', '_' or '-' (use --name)", name)
	}
	if e, ok, err := s.Get(name); err != nil {
		return Entry{}, err
	} else if ok && e.SHA256 == want {
		if _, err := os.Stat(s.Path(e)); err == nil {
			return e, nil
		}
	}
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return Entry{}, fmt.Errorf("pull: models folder: %w", err)
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{}
	}
	part := filepath.Join(s.dir, want+".part")
	size, err := download(ctx, client, opts.URL, part, want, opts.Progress)
	if err != nil {
		return Entry{}, err
	}
	file := name + fileExt(u.Path)
	if err := os.Chmod(part, 0o640); err != nil {
		return Entry{}, fmt.Errorf("pull: %w", err)
	}
	e := Entry{Name: name, File: file, SHA256: want, Size: size, Source: opts.URL, Added: time.Now().UTC().Truncate(time.Second)}
	err = s.update(func(m *manifest) error {
		if err := os.Rename(part, filepath.Join(s.dir, file)); err != nil {
			return fmt.Errorf("pull: install %s: %w", file, err)
		}
		for i := range m.Models {
			if m.Models[i].Name == name {
				m.Models[i] = e
				return nil
			}
		}
		m.Models = append(m.Models, e)
		return nil
	})
	if err != nil {
		return Entry{}, err
	}
	return e, nil
}

// fileExt keeps a model's file extension (".gguf", ".onnx"); default ".gguf".
func fileExt(p string) string {
	ext := path.Ext(p)
	if ext == "" || len(ext) > 8 || !ValidName("x"+ext) {
		return ".gguf"
	}
	return ext
}

// download fetches rawURL into part, resuming what part already holds,
// and checks the sha256 of the whole file. It returns the file's size.
func download(ctx context.Context, client *http.Client, rawURL, part, want string, progress func(int64, int64)) (int64, error) {
	f, err := os.OpenFile(part, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return 0, fmt.Errorf("pull: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	have, err := io.Copy(h, f) // hash what an earlier attempt left
	if err != nil {
		return 0, fmt.Errorf("pull: read %s: %w", part, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, fmt.Errorf("pull: %w", err)
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("pull: %w", err)
	}
	defer resp.Body.Close()
	total := int64(-1)
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		var start, end, all int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &all); err != nil || start != have {
			return 0, fmt.Errorf("pull: server answered range %d- with Content-Range %q", have, resp.Header.Get("Content-Range"))
		}
		total = all
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		// The partial file may already be whole: the checksum decides.
		return finish(f, h, have, want, part)
	case resp.StatusCode == http.StatusOK:
		// A fresh start (or a server without ranges): drop old bytes.
		if err := f.Truncate(0); err != nil {
			return 0, fmt.Errorf("pull: %w", err)
		}
		h.Reset()
		have = 0
		total = resp.ContentLength
	default:
		return 0, fmt.Errorf("pull: %s: HTTP %s", rawURL, resp.Status)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return 0, fmt.Errorf("pull: %w", err)
	}
	w := io.MultiWriter(f, h)
	buf := make([]byte, 256<<10)
	done := have
	if progress != nil {
		progress(done, total)
	}
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return 0, fmt.Errorf("pull: write %s: %w", part, err)
			}
			done += int64(n)
			if progress != nil {
				progress(done, total)
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			// The partial file stays for the next attempt to resume.
			if serr := f.Sync(); serr != nil {
				return 0, fmt.Errorf("pull: write %s: %w", part, serr)
			}
			return 0, fmt.Errorf("pull: download interrupted after %d bytes (run the same pull again to resume): %w", done, rerr)
		}
	}
	if total >= 0 && done != total {
		return 0, fmt.Errorf("pull: download ended at %d of %d bytes (run the same pull again to resume)", done, total)
	}
	return finish(f, h, done, want, part)
}

// finish syncs the complete file and checks its checksum; a mismatch
// removes it.
func finish(f *os.File, h hash.Hash, size int64, want, part string) (int64, error) {
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("pull: write %s: %w", part, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want {
		f.Close()
		if err := os.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("pull: %w (and removing the download failed: %v)", ErrChecksum, err)
		}
		return 0, fmt.Errorf("pull: %w: the download has sha256 %s, expected %s; nothing was installed", ErrChecksum, got, want)
	}
	return size, nil
}

// VerifyResult is the outcome of checking one installed model.
type VerifyResult struct {
	Entry Entry
	// Err is nil when the file exists and its size and sha256 match.
	Err error
}

// Verify re-hashes the files of the named models (all when names is
// empty) and reports each: a missing file, a size or checksum mismatch.
func (s *Store) Verify(ctx context.Context, names ...string) ([]VerifyResult, error) {
	list, err := s.List()
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []VerifyResult
	for _, e := range list {
		if len(names) > 0 && !want[e.Name] {
			continue
		}
		delete(want, e.Name)
		out = append(out, VerifyResult{Entry: e, Err: verifyFile(ctx, s.Path(e), e)})
	}
	for n := range want {
		return out, fmt.Errorf("verify %q: %w", n, ErrNotFound)
	}
	return out, nil
}

func verifyFile(ctx context.Context, p string, e Entry) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != e.Size {
		return fmt.Errorf("size is %d bytes, the manifest says %d", st.Size(), e.Size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
		return fmt.Errorf("%w: file has %s, the manifest says %s", ErrChecksum, got, e.SHA256)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
