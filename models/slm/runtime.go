package slm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/hedge-edge/hedge/platform"
)

// ORTVersion is the ONNX Runtime release scripts/fetch-ort.sh installs.
const ORTVersion = "1.30.0"

// LibraryName is the file name of ONNX Runtime's shared library.
const LibraryName = "libonnxruntime.so.1"

// ErrNoLibrary is returned by FindLibrary when ONNX Runtime's shared
// library is in none of the places hedge looks; the error names them all.
var ErrNoLibrary = errors.New("onnx runtime library not found")

// ErrRuntimeInUse is returned by OpenRuntime when the process's ONNX
// Runtime is already open with another library: a process has one.
var ErrRuntimeInUse = errors.New("onnx runtime already open with another library")

// CacheDir is where scripts/fetch-ort.sh keeps the library for arch (x64 or
// arm64): $HEDGE_CACHE or ~/.cache/hedge, then ort/<version>/<arch>.
func CacheDir(arch string) string {
	base := os.Getenv("HEDGE_CACHE")
	if base == "" {
		if h, err := os.UserHomeDir(); err == nil {
			base = filepath.Join(h, ".cache", "hedge")
		} else {
			base = filepath.Join(os.TempDir(), "hedge-cache")
		}
	}
	return filepath.Join(base, "ort", ORTVersion, arch)
}

// HostArch is the fetch script's name for the running architecture.
func HostArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm64"
	}
	return "x64"
}

// FindLibrary returns the path of ONNX Runtime's shared library: the
// configured path when set (it must exist), else the library in
// platform.LibraryFolders (beside the hedge binary, or a package's
// /usr/lib/hedge), else the fetch script's cache folder. When none exists the
// error wraps ErrNoLibrary and lists every path tried.
func FindLibrary(configured string) (string, error) {
	if configured != "" {
		if _, err := os.Stat(configured); err != nil {
			return "", fmt.Errorf("%w: slm.runtime_library %s: %v", ErrNoLibrary, configured, err)
		}
		return configured, nil
	}
	var tried []string
	for _, dir := range append(platform.LibraryFolders(), CacheDir(HostArch())) {
		tried = append(tried, filepath.Join(dir, LibraryName))
	}
	for _, p := range tried {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: tried %s; run scripts/fetch-ort.sh or set slm.runtime_library", ErrNoLibrary, strings.Join(tried, ", "))
}

// Runtime is the process's ONNX Runtime environment. onnxruntime_go keeps
// one environment per process in package state, so Runtime counts its
// owners: the first OpenRuntime loads the library, the last Close unloads
// it. Sessions are created from a Runtime and share its environment.
type Runtime struct {
	lib     string
	threads int
	once    sync.Once
}

// ortState guards onnxruntime_go's process-wide environment.
var ortState struct {
	sync.Mutex
	refs int
	lib  string
}

// OpenRuntime loads ONNX Runtime from the shared library at lib and
// returns a handle whose sessions use threads intra-op threads each
// (threads < 1: one per core). Close releases it.
func OpenRuntime(lib string, threads int) (*Runtime, error) {
	if threads < 1 {
		threads = runtime.NumCPU()
	}
	abs, err := filepath.Abs(lib)
	if err != nil {
		return nil, fmt.Errorf("open onnx runtime %s: %w", lib, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open onnx runtime: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("open onnx runtime: %s is a directory, not the shared library", abs)
	}
	ortState.Lock()
	defer ortState.Unlock()
	if ortState.refs > 0 {
		if ortState.lib != abs {
			return nil, fmt.Errorf("open onnx runtime %s: %w (%s)", abs, ErrRuntimeInUse, ortState.lib)
		}
		ortState.refs++
		return &Runtime{lib: abs, threads: threads}, nil
	}
	ort.SetSharedLibraryPath(abs)
	// ONNX Runtime 1.30's Linux build starts a telemetry system with the
	// environment: it persists a device id and an event cache under
	// $XDG_CACHE_HOME (or ~/.cache)/Microsoft and uploads to Microsoft.
	// hedge keeps everything on the device, so the switch the library reads
	// at start-up is set first, and the API's off switch follows.
	if err := os.Setenv("ORT_DISABLE_TELEMETRY", "1"); err != nil {
		return nil, fmt.Errorf("open onnx runtime: %w", err)
	}
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("open onnx runtime %s (is it libonnxruntime %s for %s?): %w", abs, ORTVersion, runtime.GOARCH, err)
	}
	if err := ort.DisableTelemetry(); err != nil {
		ort.DestroyEnvironment()
		return nil, fmt.Errorf("open onnx runtime %s: %w", abs, err)
	}
	ortState.refs, ortState.lib = 1, abs
	return &Runtime{lib: abs, threads: threads}, nil
}

// Library is the path of the loaded shared library.
func (r *Runtime) Library() string { return r.lib }

// Threads is the intra-op thread count of the runtime's sessions.
func (r *Runtime) Threads() int { return r.threads }

// Close releases the handle; the last one unloads the environment. A
// second Close does nothing.
func (r *Runtime) Close() error {
	var err error
	r.once.Do(func() {
		ortState.Lock()
		defer ortState.Unlock()
		ortState.refs--
		if ortState.refs == 0 {
			ortState.lib = ""
			if e := ort.DestroyEnvironment(); e != nil {
				err = fmt.Errorf("close onnx runtime: %w", e)
			}
		}
	})
	return err
}

// Session is one loaded ONNX model, created once and reused for every
// query; ONNX Runtime's Run is safe for concurrent use.
type Session struct {
	s *ort.DynamicAdvancedSession
}

// NewSession loads an ONNX model's bytes with the given input and output
// names.
func (r *Runtime) NewSession(model []byte, inputs, outputs []string) (*Session, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(r.threads); err != nil {
		return nil, fmt.Errorf("session options: intra-op threads %d: %w", r.threads, err)
	}
	// Queries are single texts: one op at a time is fastest, and inter-op
	// threads would only compete with the rest of hedge.
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("session options: inter-op threads: %w", err)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, opts)
	if err != nil {
		return nil, fmt.Errorf("load onnx model: %w", err)
	}
	return &Session{s: s}, nil
}

// Run runs the model; outputs that are nil are allocated by ONNX Runtime
// and must be destroyed by the caller.
func (s *Session) Run(inputs, outputs []ort.Value) error {
	return s.s.Run(inputs, outputs)
}

// Close frees the session.
func (s *Session) Close() error { return s.s.Destroy() }
