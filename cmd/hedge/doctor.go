package main

import (
	"context"
	"crypto/tls"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	ort "github.com/yalue/onnxruntime_go"
	"golang.org/x/sys/unix"

	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/intents"
	"github.com/hedge-edge/hedge/models"
	"github.com/hedge-edge/hedge/models/gguf"
	"github.com/hedge-edge/hedge/models/llm"
	"github.com/hedge-edge/hedge/models/slm"
	"github.com/hedge-edge/hedge/platform"
	"github.com/hedge-edge/hedge/systemd"
)

// Free space in the state dir below which doctor warns or fails: models
// and the bbolt file grow there, and bbolt cannot commit on a full disk.
const (
	doctorWarnFree = 500 << 20
	doctorFailFree = 50 << 20
)

// maxUnitExposure is the systemd-analyze security score above which doctor
// warns; the unit as shipped scores 1.2 (systemd.TestSecurityExposure
// holds it at 2.0 or less), so more means a drop-in weakened it.
const maxUnitExposure = 2.0

// checkStatus is the outcome of one doctor check.
type checkStatus int

const (
	checkOK   checkStatus = iota // works
	checkSkip                    // does not apply to this configuration
	checkWarn                    // works, but deserves a look
	checkFail                    // broken: hedge will not work as configured
)

func (s checkStatus) mark() string {
	switch s {
	case checkOK:
		return "✓"
	case checkWarn:
		return "!"
	case checkFail:
		return "✗"
	}
	return "-"
}

// checkResult is one line of the report.
type checkResult struct {
	Name   string
	Status checkStatus
	Detail string
}

// doctorEnv is the machine as doctor sees it. cmdDoctor fills it from the
// real system; tests point it at temp dirs, loopback listeners and a fixed
// clock.
type doctorEnv struct {
	// Root is where device facts and /proc/cpuinfo are read ("/").
	Root string
	// Arch is the architecture the binary's C code was built for
	// (runtime.GOARCH).
	Arch string
	// Now is the clock under test.
	Now func() time.Time
	// Timeout bounds each network check.
	Timeout time.Duration
	// NTP reports timedatectl's NTPSynchronized (known false when it
	// cannot tell, e.g. without systemd).
	NTP func(ctx context.Context) (synced, known bool, detail string)
	// Systemd reports whether systemd is the service manager here.
	Systemd bool
	// Analyze is the systemd-analyze executable ("" when absent).
	Analyze string
	// UnitFiles are where an installed hedge.service may be, first found
	// wins; used for the offline analysis when systemd is not running.
	UnitFiles []string
	// CPU loads llama.cpp's CPU variant from llm.cpu_library_dir ("" for
	// the default folders), as llm.LoadCPU; nil skips the check.
	CPU func(dir string) (*llm.CPUBackend, error)
	// BuildTime is the commit time of this binary (zero when unknown).
	BuildTime time.Time
	// Catalog is the models hedge knows by name, with the memory each
	// needs (models.DefaultCatalog).
	Catalog models.Catalog
}

// realDoctorEnv is the running machine.
func realDoctorEnv(timeout time.Duration) doctorEnv {
	env := doctorEnv{
		Root:      "/",
		Arch:      runtime.GOARCH,
		CPU:       func(dir string) (*llm.CPUBackend, error) { return llm.LoadCPU(dir, nil) },
		Now:       time.Now,
		Timeout:   timeout,
		NTP:       timedatectlNTP,
		UnitFiles: []string{systemd.DefaultUnitPath, "/lib/systemd/system/hedge.service", "/usr/lib/systemd/system/hedge.service"},
		Catalog:   models.DefaultCatalog(),
	}
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		env.Systemd = true
	}
	env.Analyze, _ = exec.LookPath("systemd-analyze")
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				env.BuildTime, _ = time.Parse(time.RFC3339, s.Value)
			}
		}
	}
	return env
}

const doctorUsage = `usage: hedge doctor [--config FILE] [--timeout D]

Checks what hedge needs on this machine: the llama.cpp CPU variant this
CPU gets, the ONNX Runtime library, the models and their checksums, the MQTT broker and the cloud endpoint, free
space in the state dir, the clock, and the installed unit's sandbox.
Prints one line per check (✓ fine, ! worth a look, ✗ broken, - not used).
Exit status: 0 no check failed, 1 a check failed, 2 usage or config error.

`

// cmdDoctor is `hedge doctor`.
func cmdDoctor(args []string) int {
	return doctor(context.Background(), args, os.Stdout, os.Stderr, realDoctorEnv)
}

func doctor(ctx context.Context, args []string, stdout, stderr io.Writer, newEnv func(time.Duration) doctorEnv) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, doctorUsage)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", "", "config file (default: $HEDGE_CONFIG, else "+systemd.DefaultConfig+" when it exists, else the built-in defaults)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long each network check may take")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hedge doctor: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "hedge doctor: --timeout %s: must be positive\n", *timeout)
		return 2
	}
	path := *cfgPath
	if path == "" {
		path = os.Getenv("HEDGE_CONFIG")
	}
	if path == "" {
		if _, err := os.Stat(systemd.DefaultConfig); err == nil {
			path = systemd.DefaultConfig
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stdout, "%s %-13s %s\n", checkFail.mark(), "config", configName(path)+" is invalid:")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stdout, "    %s\n", line)
		}
		return 2
	}
	results := []checkResult{{"config", checkOK, configName(path) + " is valid"}}
	results = append(results, runChecks(ctx, cfg, newEnv(*timeout))...)
	return report(stdout, results)
}

func configName(path string) string {
	if path == "" {
		return "built-in defaults"
	}
	return path
}

// runChecks runs every check in order; each one is independent, so one
// broken part does not hide the state of the others.
func runChecks(ctx context.Context, cfg config.Config, env doctorEnv) []checkResult {
	var out []checkResult
	out = append(out, checkDevice(env))
	out = append(out, checkCPU(cfg, env))
	out = append(out, checkORT(cfg))
	out = append(out, checkModels(ctx, cfg)...)
	out = append(out, checkLLMMemory(cfg, env))
	out = append(out, checkBroker(ctx, cfg, env)...)
	out = append(out, checkCloud(ctx, cfg, env))
	out = append(out, checkStateDir(cfg))
	out = append(out, checkClock(ctx, env))
	out = append(out, checkUnit(ctx, env))
	return out
}

// report prints the results and returns the exit status: 1 when a check
// failed.
func report(w io.Writer, results []checkResult) int {
	fails, warns := 0, 0
	for _, r := range results {
		fmt.Fprintf(w, "%s %-13s %s\n", r.Status.mark(), r.Name, r.Detail)
		switch r.Status {
		case checkFail:
			fails++
		case checkWarn:
			warns++
		}
	}
	fmt.Fprintf(w, "\n%s, %s\n", plural(fails, "problem"), plural(warns, "warning"))
	if fails > 0 {
		return 1
	}
	return 0
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// checkDevice reports the board and warns about the firmware's
// under-voltage and throttling flags, which slow every tier.
func checkDevice(env doctorEnv) checkResult {
	f, _ := platform.Detect(env.Root) // partial facts are still worth showing
	board := f.Board
	if board == "" {
		board = "unknown board"
	}
	d := fmt.Sprintf("%s (%s), %s, %d cores", board, f.Kind, env.Arch, f.Cores)
	if f.MemTotal > 0 {
		d += fmt.Sprintf(", %.1f GiB RAM", float64(f.MemTotal)/(1<<30))
	}
	if z, ok := f.MainZone(); ok {
		d += fmt.Sprintf(", %.0f °C", z.Celsius)
	}
	if t := f.Throttle; t != nil && (t.UnderVoltage || t.Throttled || t.FreqCapped) {
		return checkResult{"device", checkWarn, d + "; firmware reports " + t.String() + " (check the power supply and cooling)"}
	}
	return checkResult{"device", checkOK, d}
}

// checkCPU reports which of llama.cpp's CPU variants (libggml-cpu-*.so)
// this CPU gets, loading it the way hedge run does. hedge's own code is
// built for the architecture's baseline; only a variant can use newer
// instructions, and a variant that needs one this CPU lacks is never
// loaded. So no build dies with SIGILL: with no usable variant the LLM
// tier is off, which this check reports as the failure it is.
func checkCPU(cfg config.Config, env doctorEnv) checkResult {
	const name = "cpu"
	if cfg.LLM.Model == "" {
		return checkResult{name, checkSkip, "llm.model is empty: no llama.cpp CPU variant needed"}
	}
	if env.CPU == nil {
		return checkResult{name, checkSkip, "not checked"}
	}
	b, err := env.CPU(cfg.LLM.CPULibraryDir)
	if err != nil {
		return checkResult{name, checkFail, err.Error() + "; hedge run keeps the local LLM tier off (the SLM, the cache and the cloud still answer)"}
	}
	d := fmt.Sprintf("llama.cpp CPU variant %s (score %d, %s): %s", b.Variant.Name, b.Variant.Score, b.Variant.Path, strings.Join(b.Features, " "))
	if others := b.Others(); len(others) > 0 {
		d += "; also there: " + strings.Join(others, ", ")
	}
	return checkResult{name, checkOK, d}
}

// checkORT finds ONNX Runtime's library the way hedge run does and loads
// it into this process, which proves the file is a library of the right
// architecture that the dynamic loader accepts.
func checkORT(cfg config.Config) checkResult {
	const name = "onnx runtime"
	if !cfg.SLM.Enabled {
		return checkResult{name, checkSkip, "slm.enabled is false"}
	}
	lib, err := slm.FindLibrary(cfg.SLM.RuntimeLibrary)
	if err != nil {
		return checkResult{name, checkFail, err.Error()}
	}
	if err := checkELFArch(lib); err != nil {
		return checkResult{name, checkFail, err.Error()}
	}
	rt, err := slm.OpenRuntime(lib, 1)
	if err != nil {
		return checkResult{name, checkFail, err.Error()}
	}
	v := ort.GetVersion()
	if err := rt.Close(); err != nil {
		return checkResult{name, checkWarn, fmt.Sprintf("%s loads (version %s) but did not unload: %v", lib, v, err)}
	}
	if v != slm.ORTVersion {
		return checkResult{name, checkWarn, fmt.Sprintf("%s loads, but it is version %s and hedge is tested with %s", lib, v, slm.ORTVersion)}
	}
	return checkResult{name, checkOK, fmt.Sprintf("%s loads (version %s)", lib, v)}
}

// checkELFArch fails early and plainly on a library built for another
// machine (an x64 library on a Pi), which dlopen reports obscurely.
func checkELFArch(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not a shared library: %w", path, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if want != 0 && f.Machine != want {
		return fmt.Errorf("%s is built for %s, but this hedge is %s: fetch the %s library (scripts/fetch-ort.sh %s)",
			path, f.Machine, runtime.GOARCH, slm.HostArch(), slm.HostArch())
	}
	return nil
}

// checkModels verifies the trained intent model (its files against its own
// manifest), every model in the models manifest, and the configured LLM.
func checkModels(ctx context.Context, cfg config.Config) []checkResult {
	var out []checkResult
	out = append(out, checkIntentModel(cfg))

	store := modelStore(cfg)
	list, err := store.Verify(ctx)
	switch {
	case err != nil:
		out = append(out, checkResult{"models", checkFail, err.Error()})
	case len(list) == 0:
		out = append(out, checkResult{"models", checkSkip, "no models in " + filepath.Join(store.Dir(), models.ManifestFile)})
	}
	listed := map[string]error{}
	for _, r := range list {
		listed[store.Path(r.Entry)] = r.Err
		if r.Err != nil {
			out = append(out, checkResult{"model " + r.Entry.Name, checkFail, fmt.Sprintf("%s: %v (pull it again: hedge models pull)", store.Path(r.Entry), r.Err)})
			continue
		}
		out = append(out, checkResult{"model " + r.Entry.Name, checkOK, fmt.Sprintf("%s, %s, sha256 matches the manifest", store.Path(r.Entry), humanBytes(r.Entry.Size))})
	}

	if cfg.LLM.Model == "" {
		return append(out, checkResult{"llm", checkSkip, "llm.model is empty: the local LLM tier is off"})
	}
	path, _, err := store.Resolve(cfg.LLM.Model)
	if err != nil {
		return append(out, checkResult{"llm", checkFail, err.Error()})
	}
	if verr, ok := listed[path]; ok {
		if verr != nil {
			return append(out, checkResult{"llm", checkFail, fmt.Sprintf("llm.model %s is %s, which failed its check above", cfg.LLM.Model, path)})
		}
		return append(out, checkResult{"llm", checkOK, fmt.Sprintf("llm.model %s is %s (verified above)", cfg.LLM.Model, path)})
	}
	// A plain path has no recorded checksum; at least it must be a GGUF
	// file whose header and tensor table read back whole.
	info, err := gguf.Inspect(path)
	if err != nil {
		return append(out, checkResult{"llm", checkFail, fmt.Sprintf("llm.model %s: %v", path, err)})
	}
	return append(out, checkResult{"llm", checkOK, fmt.Sprintf("%s: GGUF %s, no checksum recorded (pull it with hedge models pull to have one)", path, info.String("general.architecture"))})
}

// checkLLMMemory warns when llm.model needs more memory than the board
// has: hedge would be killed for memory, or swap, on its first answer.
func checkLLMMemory(cfg config.Config, env doctorEnv) checkResult {
	const name = "llm memory"
	if cfg.LLM.Model == "" {
		return checkResult{name, checkSkip, "llm.model is empty"}
	}
	f, _ := platform.Detect(env.Root)
	if f.MemTotal == 0 {
		return checkResult{name, checkSkip, "the board's RAM is unknown"}
	}
	need, what, ok := llmMemoryNeed(cfg, env.Catalog)
	if !ok {
		return checkResult{name, checkSkip, "llm.model " + cfg.LLM.Model + " is not there to size (see llm above)"}
	}
	d := fmt.Sprintf("%s needs about %s, the board has %s", what, humanBytes(need), humanBytes(int64(f.MemTotal)))
	if uint64(need) > f.MemTotal {
		return checkResult{name, checkWarn, d + ": it does not fit; choose a smaller model (hedge models list --available)"}
	}
	return checkResult{name, checkOK, d}
}

// llmMemoryNeed is the memory llm.model takes: the catalog's figure for a
// catalog model (known by its checksum, whatever name it was pulled
// under), else an estimate from the file's size: the weights, a quarter
// more for the KV cache and compute buffers, and 256 MiB.
func llmMemoryNeed(cfg config.Config, catalog models.Catalog) (need int64, what string, ok bool) {
	store := modelStore(cfg)
	if e, found, err := store.Get(cfg.LLM.Model); err == nil && found {
		if c, known := catalog.BySHA256(e.SHA256); known {
			return c.RAM, c.Title, true
		}
	}
	path, _, err := store.Resolve(cfg.LLM.Model)
	if err != nil {
		return 0, "", false
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, "", false
	}
	return fi.Size() + fi.Size()/4 + 256<<20, filepath.Base(path) + " (estimated from its size)", true
}

// checkIntentModel checks the model hedge run would load for the
// configured intents: present files must match their manifest's sha256.
func checkIntentModel(cfg config.Config) checkResult {
	const name = "intent model"
	if !cfg.SLM.Enabled {
		return checkResult{name, checkSkip, "slm.enabled is false"}
	}
	if cfg.SLM.Encoder != "compact" {
		return checkResult{name, checkSkip, "encoder " + cfg.SLM.Encoder + " is not checked"}
	}
	set, err := intents.Load(cfg.SLM.Intents)
	if err != nil {
		return checkResult{name, checkFail, err.Error()}
	}
	base := cfg.SLM.ModelDir
	if base == "" {
		base = filepath.Join(cfg.StateDir, "slm")
	}
	dir := filepath.Join(base, modelKey(set, buildOptions(cfg.SLM.Seed)))
	_, err = slm.LoadBundle(dir)
	switch {
	case errors.Is(err, slm.ErrNoModel):
		return checkResult{name, checkSkip, fmt.Sprintf("not trained yet for the %s; hedge run trains it when it starts (%s)", intentsName(cfg.SLM.Intents), dir)}
	case errors.Is(err, slm.ErrCorruptModel):
		return checkResult{name, checkFail, fmt.Sprintf("%v; delete %s and hedge run trains it again", err, dir)}
	case err != nil:
		return checkResult{name, checkFail, err.Error()}
	}
	// The count is of the intents file, as hedge run logs it; the model has
	// one label more, out of scope.
	return checkResult{name, checkOK, fmt.Sprintf("%s, %d intents, sha256 of every file matches", dir, len(set.File.Intents))}
}

// checkBroker dials each configured broker. Reaching one of them is enough
// for hedge (the others are fail-overs), so only "none reachable" fails.
func checkBroker(ctx context.Context, cfg config.Config, env doctorEnv) []checkResult {
	const name = "mqtt"
	m := cfg.MQTT
	if !m.Enabled {
		return []checkResult{{name, checkSkip, "mqtt.enabled is false"}}
	}
	if m.UseEmbedded() {
		return []checkResult{{name, checkOK, "embedded broker on " + m.Embedded.Listen + " (hedge run starts it)"}}
	}
	var out []checkResult
	up := 0
	for _, b := range m.BrokerURLs() {
		addr, err := brokerAddr(b)
		if err == nil {
			err = dialTCP(ctx, addr, env.Timeout)
		}
		if err != nil {
			out = append(out, checkResult{name, checkFail, fmt.Sprintf("broker %s unreachable: %v", b, err)})
			continue
		}
		up++
		out = append(out, checkResult{name, checkOK, fmt.Sprintf("broker %s accepts connections", b)})
	}
	if up > 0 {
		for i := range out {
			if out[i].Status == checkFail {
				out[i].Status = checkWarn
				out[i].Detail += " (another broker is up)"
			}
		}
	}
	return out
}

// brokerAddr is host:port of a broker URL, with the scheme's default port.
func brokerAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := map[string]string{"tcp": "1883", "mqtt": "1883", "ssl": "8883", "tls": "8883", "mqtts": "8883", "tcps": "8883", "ws": "80", "wss": "443"}[u.Scheme]
	if port == "" {
		return "", fmt.Errorf("scheme %q has no default port", u.Scheme)
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

func dialTCP(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// checkCloud sends one HEAD request to cloud.base_url. Any HTTP answer,
// even 404, proves the network path and TLS work; an unreachable endpoint
// is a warning, since hedge answers locally and queues escalations, while
// a TLS failure is a misconfiguration.
func checkCloud(ctx context.Context, cfg config.Config, env doctorEnv) checkResult {
	const name = "cloud"
	base := cfg.Cloud.BaseURL
	if base == "" {
		return checkResult{name, checkSkip, "cloud.base_url is empty: the cloud tier is off"}
	}
	shown := redactedURL(base)
	ctx, cancel := context.WithTimeout(ctx, env.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, base, nil)
	if err != nil {
		return checkResult{name, checkFail, fmt.Sprintf("%s: %v", shown, err)}
	}
	client := &http.Client{
		// A redirect answer is an answer: do not follow it elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		var certErr *tls.CertificateVerificationError
		var recErr tls.RecordHeaderError
		if errors.As(err, &certErr) || errors.As(err, &recErr) {
			return checkResult{name, checkFail, fmt.Sprintf("%s: TLS failed: %v", shown, err)}
		}
		return checkResult{name, checkWarn, fmt.Sprintf("%s unreachable (%v); hedge answers locally and queues escalations until it is back", shown, unwrapURLError(err))}
	}
	resp.Body.Close()
	return checkResult{name, checkOK, fmt.Sprintf("%s answers (HTTP %d)", shown, resp.StatusCode)}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactedURL hides credentials a URL might carry.
func redactedURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

// checkStateDir reports the free space where hedge keeps its state. A
// state dir that does not exist yet is measured at its nearest existing
// parent (hedge run creates it).
func checkStateDir(cfg config.Config) checkResult {
	const name = "state dir"
	dir := cfg.StateDir
	p, err := filepath.Abs(dir)
	if err != nil {
		return checkResult{name, checkFail, fmt.Sprintf("%s: %v", dir, err)}
	}
	note := ""
	for {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return checkResult{name, checkFail, fmt.Sprintf("%s: %v", dir, err)}
		}
		note = " (not created yet; measured at " + filepath.Dir(p) + ")"
		if filepath.Dir(p) == p {
			break
		}
		p = filepath.Dir(p)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return checkResult{name, checkFail, fmt.Sprintf("%s: statfs: %v", dir, err)}
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	d := fmt.Sprintf("%s: %s free%s", dir, humanBytes(free), note)
	switch status := freeSpaceStatus(free); status {
	case checkFail:
		return checkResult{name, status, d + "; below " + humanBytes(doctorFailFree) + " the store cannot commit: free some space"}
	case checkWarn:
		return checkResult{name, status, d + "; below " + humanBytes(doctorWarnFree) + " there is no room for a model"}
	}
	return checkResult{name, checkOK, d}
}

// freeSpaceStatus grades free bytes against doctorWarnFree and
// doctorFailFree.
func freeSpaceStatus(free int64) checkStatus {
	switch {
	case free < doctorFailFree:
		return checkFail
	case free < doctorWarnFree:
		return checkWarn
	}
	return checkOK
}

// Years outside which the clock is surely wrong: a board without a
// real-time clock starts in 1970 (or at its image's date) until NTP
// answers, and TLS, cache TTLs and the daily cloud budget go wrong with it.
const (
	clockMinYear = 2024
	clockMaxYear = 2100
)

func checkClock(ctx context.Context, env doctorEnv) checkResult {
	const name = "clock"
	now := env.Now()
	stamp := now.UTC().Format("2006-01-02 15:04 UTC")
	switch {
	case now.Year() < clockMinYear:
		return checkResult{name, checkFail, stamp + " is before " + strconv.Itoa(clockMinYear) + ": the clock is not set (no RTC and no NTP yet?); TLS and cache expiry fail"}
	case now.Year() >= clockMaxYear:
		return checkResult{name, checkFail, stamp + " is in the far future: set the clock"}
	case !env.BuildTime.IsZero() && now.Before(env.BuildTime.Add(-24*time.Hour)):
		return checkResult{name, checkFail, stamp + " is before this hedge was built (" + env.BuildTime.UTC().Format("2006-01-02") + "): set the clock"}
	}
	if env.NTP == nil {
		return checkResult{name, checkOK, stamp}
	}
	synced, known, detail := env.NTP(ctx)
	switch {
	case !known:
		return checkResult{name, checkOK, stamp + "; NTP state unknown (" + detail + ")"}
	case !synced:
		return checkResult{name, checkWarn, stamp + "; not synchronized by NTP (timedatectl): the time may drift"}
	}
	return checkResult{name, checkOK, stamp + ", synchronized by NTP"}
}

// timedatectlNTP asks systemd-timedated whether the clock is NTP-synced.
func timedatectlNTP(ctx context.Context) (synced, known bool, detail string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "timedatectl", "show", "--property=NTPSynchronized", "--value").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return false, false, "timedatectl: " + strings.TrimSpace(firstLine(string(ee.Stderr)))
		}
		return false, false, "timedatectl: " + err.Error()
	}
	switch strings.TrimSpace(string(out)) {
	case "yes":
		return true, true, ""
	case "no":
		return false, true, ""
	}
	return false, false, fmt.Sprintf("timedatectl said %q", strings.TrimSpace(string(out)))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

var exposureRe = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`)

// checkUnit rates the installed unit's sandbox with systemd-analyze
// security: the loaded unit (drop-ins included) when systemd runs, else
// the unit file offline.
func checkUnit(ctx context.Context, env doctorEnv) checkResult {
	const name = "unit"
	if env.Analyze == "" {
		return checkResult{name, checkSkip, "systemd-analyze not found (no systemd here)"}
	}
	var args []string
	var what string
	if env.Systemd {
		if !unitLoaded(ctx) {
			return checkResult{name, checkSkip, systemd.Name + ".service is not installed (hedge install, or the .deb)"}
		}
		args = []string{"security", "--no-pager", systemd.Name + ".service"}
		what = systemd.Name + ".service"
	} else {
		for _, p := range env.UnitFiles {
			if _, err := os.Stat(p); err == nil {
				args = []string{"security", "--offline=true", "--no-pager", p}
				what = p + " (offline: systemd is not running here)"
				break
			}
		}
		if args == nil {
			return checkResult{name, checkSkip, "systemd is not running here and no unit file is installed"}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// systemd-analyze security exits non-zero above its threshold, which
	// is not an error here: the score is parsed from its output.
	out, err := exec.CommandContext(ctx, env.Analyze, args...).CombinedOutput()
	m := exposureRe.FindSubmatch(out)
	if m == nil {
		return checkResult{name, checkWarn, fmt.Sprintf("systemd-analyze security %s gave no score (%v): %s", what, err, firstLine(strings.TrimSpace(string(out))))}
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	d := fmt.Sprintf("%s: exposure %.1f %s (0 = locked down, 10 = no sandbox)", what, score, m[2])
	if score > maxUnitExposure {
		return checkResult{name, checkWarn, fmt.Sprintf("%s; hedge ships at 1.2: a drop-in weakened it (systemctl cat %s)", d, systemd.Name)}
	}
	return checkResult{name, checkOK, d}
}

// unitLoaded reports whether systemd knows hedge.service.
func unitLoaded(ctx context.Context) bool {
	out, err := exec.CommandContext(ctx, "systemctl", "show", "--property=LoadState", "--value", systemd.Name+".service").Output()
	return err == nil && strings.TrimSpace(string(out)) == "loaded"
}
