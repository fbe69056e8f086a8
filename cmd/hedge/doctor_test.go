package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/intents"
	"github.com/hedge-edge/hedge/models"
	"github.com/hedge-edge/hedge/models/gguf"
	"github.com/hedge-edge/hedge/models/llm"
	"github.com/hedge-edge/hedge/systemd"
)

// doctorSetup is a healthy hedge installation in temp dirs: a trained
// intent model, a GGUF model pulled into the models manifest, a broker
// (a loopback listener), a cloud endpoint (httptest) and the real ONNX
// Runtime library.
type doctorSetup struct {
	dir, state, config string
	broker             net.Listener
	cloud              *httptest.Server
	unit               string
	model              string // the pulled GGUF's path
	intentDir          string // the trained intent model's folder
}

func newDoctorSetup(t *testing.T) *doctorSetup {
	t.Helper()
	ctx := context.Background()
	s := &doctorSetup{dir: t.TempDir()}
	s.state = filepath.Join(s.dir, "state")

	// The GGUF fixture, pulled the user's way so the manifest records its
	// sha256.
	src := filepath.Join(s.dir, "tiny.gguf")
	if err := gguf.WriteLlama(src, gguf.Tiny, gguf.F32, 1); err != nil {
		t.Fatal(err)
	}
	blob, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "tiny.gguf", time.Time{}, bytes.NewReader(blob))
	}))
	defer files.Close()
	store := models.Open(filepath.Join(s.state, "models"))
	e, err := store.Pull(ctx, models.PullOptions{URL: files.URL + "/tiny.gguf", SHA256: hex.EncodeToString(sum[:]), Name: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	s.model = store.Path(e)

	// The intent model hedge run would load for this config.
	cfg := config.Default()
	cfg.StateDir = s.state
	set, err := intents.Load("")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := trainIntents(ctx, set, buildOptions(cfg.SLM.Seed), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.intentDir = filepath.Join(s.state, "slm", modelKey(set, buildOptions(cfg.SLM.Seed)))
	if err := b.Save(s.intentDir); err != nil {
		t.Fatal(err)
	}

	s.broker, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.broker.Close() })
	go func() { // accept and drop, as a broker that waits for CONNECT would
		for {
			c, err := s.broker.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	s.cloud = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound) // OpenAI answers 404 at /v1
	}))
	t.Cleanup(s.cloud.Close)

	unit, err := systemd.Unit(systemd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.unit = filepath.Join(s.dir, "hedge.service")
	if err := os.WriteFile(s.unit, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	s.writeConfig(t, "")
	return s
}

// writeConfig writes the setup's config with extra YAML appended.
func (s *doctorSetup) writeConfig(t *testing.T, extra string) {
	t.Helper()
	body := "version: 1\nstate_dir: " + s.state + "\n" +
		"slm:\n  runtime_library: " + ortLibrary(t) + "\n" +
		"llm:\n  model: tiny\n" +
		"mqtt:\n  broker: tcp://" + s.broker.Addr().String() + "\n" +
		"cloud:\n  base_url: " + s.cloud.URL + "/v1\n" + extra
	s.config = filepath.Join(s.dir, "config.yaml")
	if err := os.WriteFile(s.config, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// env is a Raspberry Pi 5 (platform's fixture) whose arm64 hedge gets
// llama.cpp's armv8.2_2 variant (a fake loader), with a set clock
// synchronized by NTP, and the unit analysed offline by the real
// systemd-analyze.
func (s *doctorSetup) env(t *testing.T) doctorEnv {
	return doctorEnv{
		Root:      "../../platform/testdata/pi5",
		Arch:      "arm64",
		Now:       func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) },
		Timeout:   2 * time.Second,
		NTP:       func(context.Context) (bool, bool, string) { return true, true, "" },
		Analyze:   systemdAnalyze(t),
		UnitFiles: []string{filepath.Join(s.dir, "absent.service"), s.unit},
		CPU:       fakeCPU(pi5Backend, nil),
		BuildTime: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	}
}

// systemdAnalyze installs Debian's systemd when systemd-analyze is missing.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("systemd-analyze"); err == nil {
		return p
	}
	if out, err := exec.Command("../../scripts/apt-ensure.sh", "systemd").CombinedOutput(); err != nil {
		t.Fatalf("apt-ensure systemd: %v\n%s", err, out)
	}
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze still missing after installing systemd: %v", err)
	}
	return p
}

func runDoctor(t *testing.T, env doctorEnv, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := doctor(context.Background(), args, &out, &errb, func(time.Duration) doctorEnv { return env })
	t.Logf("hedge doctor %s → %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String()
}

// line returns the report line of the check named name that contains
// every one of want, failing the test when there is none.
func line(t *testing.T, report, mark, name string, want ...string) {
	t.Helper()
next:
	for _, l := range strings.Split(report, "\n") {
		if !strings.HasPrefix(l, mark+" ") || strings.TrimSpace(l[len(mark)+1:min(len(l), len(mark)+15)]) != name {
			continue
		}
		for _, w := range want {
			if !strings.Contains(l, w) {
				continue next
			}
		}
		return
	}
	t.Errorf("no %q line for %s containing %q in:\n%s", mark, name, want, report)
}

func TestDoctorHealthy(t *testing.T) {
	s := newDoctorSetup(t)
	code, out := runDoctor(t, s.env(t), "--config", s.config)
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	line(t, out, "✓", "config", s.config)
	line(t, out, "✓", "device", "Raspberry Pi 5", "raspberry-pi-5")
	line(t, out, "✓", "cpu", "variant armv8.2_2 (score 3,", "/usr/lib/hedge/libggml-cpu-armv8.2_2.so", "DOTPROD", "armv8.0_1 (score 1)")
	line(t, out, "✓", "onnx runtime", "loads", "version 1.30.0")
	// The same count as hedge run's "intent model loaded" line: the
	// intents of the file, without the model's out-of-scope label.
	set, err := intents.Load("")
	if err != nil {
		t.Fatal(err)
	}
	line(t, out, "✓", "intent model", s.intentDir, fmt.Sprintf(" %d intents,", len(set.File.Intents)), "sha256")
	line(t, out, "✓", "model tiny", s.model, "sha256 matches")
	line(t, out, "✓", "llm", "verified above")
	line(t, out, "✓", "mqtt", s.broker.Addr().String(), "accepts connections")
	line(t, out, "✓", "cloud", "HTTP 404")
	line(t, out, "✓", "state dir", "free")
	line(t, out, "✓", "clock", "2026-11-28", "synchronized by NTP")
	line(t, out, "✓", "unit", "exposure 1.2", "offline")
	if strings.Contains(out, "✗") || strings.Contains(out, "\n! ") {
		t.Errorf("a healthy set-up has a problem or warning:\n%s", out)
	}
	if !strings.Contains(out, "0 problems, 0 warnings") {
		t.Errorf("no summary line:\n%s", out)
	}
}

func TestDoctorBroken(t *testing.T) {
	s := newDoctorSetup(t)
	// A closed port: listen, note the port, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	s.broker.Close()
	s.cloud.Close()
	// The model file loses a byte in its middle; the intent model's ONNX
	// file too.
	flipByte(t, s.model)
	flipByte(t, filepath.Join(s.intentDir, "model.onnx"))
	s.writeConfig(t, "")
	cfg := strings.Replace(mustRead(t, s.config), ortLibrary(t), filepath.Join(s.dir, "nowhere", "libonnxruntime.so.1"), 1)
	cfg = strings.Replace(cfg, s.broker.Addr().String(), closed, 1)
	if err := os.WriteFile(s.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := s.env(t)
	env.Root = "../../platform/testdata/pi4"
	env.CPU = fakeCPU(nil, fmt.Errorf("%w (arm64; this CPU has asimd and lacks atomics asimddp): tried /usr/lib/hedge (no libggml-cpu-*.so)", llm.ErrNoCPUVariant))
	env.Now = func() time.Time { return time.Unix(0, 0) }
	env.NTP = func(context.Context) (bool, bool, string) { return false, true, "" }

	code, out := runDoctor(t, env, "--config", s.config)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	line(t, out, "✗", "cpu", "no llama.cpp CPU variant runs", "lacks atomics asimddp", "/usr/lib/hedge", "LLM tier off", "SLM")
	line(t, out, "✗", "onnx runtime", "not found", "nowhere/libonnxruntime.so.1")
	line(t, out, "✗", "intent model", "corrupt", "model.onnx")
	line(t, out, "✗", "model tiny", "sha256 mismatch")
	line(t, out, "✗", "mqtt", closed, "unreachable")
	line(t, out, "!", "cloud", "unreachable", "queues escalations")
	line(t, out, "✗", "llm", "failed its check")
	line(t, out, "✗", "clock", "1970-01-01", "not set")
	if !strings.Contains(out, "7 problems, 1 warning") {
		t.Errorf("want 7 problems and 1 warning in the summary:\n%s", out)
	}
}

func TestDoctorLibraryNotALibrary(t *testing.T) {
	s := newDoctorSetup(t)
	bogus := filepath.Join(s.dir, "libonnxruntime.so.1")
	if err := os.WriteFile(bogus, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.SLM.RuntimeLibrary = bogus
	r := checkORT(cfg)
	if r.Status != checkFail || !strings.Contains(r.Detail, "not a shared library") {
		t.Errorf("checkORT(text file) = %+v", r)
	}
	// The arm64 library on this amd64 machine, when it is cached (the
	// emulated test fetches it), is refused by name, not by dlopen.
	if out, err := exec.Command("bash", "../../scripts/fetch-ort.sh", "arm64").Output(); err == nil {
		cfg.SLM.RuntimeLibrary = strings.TrimSpace(string(out))
		r := checkORT(cfg)
		if r.Status != checkFail || !strings.Contains(r.Detail, "EM_AARCH64") {
			t.Errorf("checkORT(arm64 library) = %+v", r)
		}
	} else {
		t.Fatalf("fetch-ort.sh arm64: %v", err)
	}
}

func TestDoctorTLSFailureAndRedirect(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
	tlsSrv.StartTLS()                                   // a certificate nobody trusts
	defer tlsSrv.Close()
	cfg := config.Default()
	cfg.Cloud.BaseURL = tlsSrv.URL + "/v1"
	env := doctorEnv{Timeout: 2 * time.Second}
	if r := checkCloud(context.Background(), cfg, env); r.Status != checkFail || !strings.Contains(r.Detail, "TLS failed") {
		t.Errorf("untrusted certificate: %+v", r)
	}
	redirect := httptest.NewServer(http.RedirectHandler("http://192.0.2.1/elsewhere", http.StatusFound))
	defer redirect.Close()
	cfg.Cloud.BaseURL = redirect.URL
	if r := checkCloud(context.Background(), cfg, env); r.Status != checkOK || !strings.Contains(r.Detail, "HTTP 302") {
		t.Errorf("redirect: %+v", r)
	}
}

func TestDoctorUnitWeakened(t *testing.T) {
	s := newDoctorSetup(t)
	weak := strings.NewReplacer("NoNewPrivileges=yes", "NoNewPrivileges=no", "ProtectSystem=strict", "ProtectSystem=no",
		"ProtectHome=yes", "ProtectHome=no", "PrivateDevices=yes", "PrivateDevices=no", "CapabilityBoundingSet=\n", "").Replace(mustRead(t, s.unit))
	if err := os.WriteFile(s.unit, []byte(weak), 0o644); err != nil {
		t.Fatal(err)
	}
	r := checkUnit(context.Background(), s.env(t))
	if r.Status != checkWarn || !strings.Contains(r.Detail, "weakened") {
		t.Errorf("weakened unit: %+v", r)
	}
	env := s.env(t)
	env.UnitFiles = []string{filepath.Join(s.dir, "absent.service")}
	if r := checkUnit(context.Background(), env); r.Status != checkSkip {
		t.Errorf("no unit: %+v", r)
	}
}

func TestDoctorBrokerFailover(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close()
	cfg := config.Default()
	cfg.MQTT.Broker = "tcp://" + downAddr
	cfg.MQTT.Brokers = []string{"mqtt://" + up.Addr().String()}
	rs := checkBroker(context.Background(), cfg, doctorEnv{Timeout: 2 * time.Second})
	if len(rs) != 2 || rs[0].Status != checkWarn || !strings.Contains(rs[0].Detail, "another broker is up") || rs[1].Status != checkOK {
		t.Errorf("fail-over brokers: %+v", rs)
	}
	cfg.MQTT.Broker, cfg.MQTT.Brokers = "", nil
	if rs := checkBroker(context.Background(), cfg, doctorEnv{}); len(rs) != 1 || rs[0].Status != checkOK || !strings.Contains(rs[0].Detail, "embedded") {
		t.Errorf("embedded broker: %+v", rs)
	}
}

func TestDoctorStateDirNotCreated(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = filepath.Join(t.TempDir(), "a", "b")
	r := checkStateDir(cfg)
	if r.Status == checkFail || !strings.Contains(r.Detail, "not created yet") {
		t.Errorf("checkStateDir(missing) = %+v", r)
	}
}

func TestFreeSpaceStatus(t *testing.T) {
	for _, c := range []struct {
		free int64
		want checkStatus
	}{
		{10 << 30, checkOK}, {doctorWarnFree, checkOK}, {doctorWarnFree - 1, checkWarn},
		{doctorFailFree, checkWarn}, {doctorFailFree - 1, checkFail}, {0, checkFail},
	} {
		if got := freeSpaceStatus(c.free); got != c.want {
			t.Errorf("freeSpaceStatus(%d) = %v, want %v", c.free, got, c.want)
		}
	}
}

func TestClockChecks(t *testing.T) {
	at := func(y int) doctorEnv {
		return doctorEnv{Now: func() time.Time { return time.Date(y, 6, 1, 0, 0, 0, 0, time.UTC) }}
	}
	for y, want := range map[int]checkStatus{1970: checkFail, 2023: checkFail, 2024: checkOK, 2030: checkOK, 2100: checkFail} {
		if r := checkClock(context.Background(), at(y)); r.Status != want {
			t.Errorf("year %d: %+v, want %v", y, r, want)
		}
	}
	env := at(2025)
	env.BuildTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if r := checkClock(context.Background(), env); r.Status != checkFail || !strings.Contains(r.Detail, "before this hedge was built") {
		t.Errorf("clock before the build: %+v", r)
	}
	env = at(2026)
	env.NTP = func(context.Context) (bool, bool, string) {
		return false, false, "timedatectl: not booted with systemd"
	}
	if r := checkClock(context.Background(), env); r.Status != checkOK || !strings.Contains(r.Detail, "NTP state unknown") {
		t.Errorf("NTP unknown: %+v", r)
	}
}

// pi5Backend is what LoadCPU finds on a Raspberry Pi 5 with the .deb.
var pi5Backend = &llm.CPUBackend{
	Variant:  llm.CPUVariant{Name: "armv8.2_2", Path: "/usr/lib/hedge/libggml-cpu-armv8.2_2.so", Score: 3},
	Features: []string{"NEON", "ARM_FMA", "FP16_VA", "DOTPROD", "LLAMAFILE", "REPACK"},
	Folders: []llm.CPUFolder{{Dir: "/usr/lib/hedge", Variants: []llm.CPUVariant{
		{Name: "armv8.0_1", Path: "/usr/lib/hedge/libggml-cpu-armv8.0_1.so", Score: 1},
		{Name: "armv8.2_1", Path: "/usr/lib/hedge/libggml-cpu-armv8.2_1.so", Score: 2},
		{Name: "armv8.2_2", Path: "/usr/lib/hedge/libggml-cpu-armv8.2_2.so", Score: 3},
	}}},
}

func fakeCPU(b *llm.CPUBackend, err error) func(string) (*llm.CPUBackend, error) {
	return func(string) (*llm.CPUBackend, error) { return b, err }
}

// TestDoctorCPU loads this machine's variant with the real loader, from
// the build cache, and from a folder without variants.
func TestDoctorCPU(t *testing.T) {
	env := doctorEnv{CPU: func(dir string) (*llm.CPUBackend, error) { return llm.LoadCPU(dir, nil) }}
	cfg := config.Default()
	if r := checkCPU(cfg, env); r.Status != checkSkip || !strings.Contains(r.Detail, "llm.model is empty") {
		t.Errorf("no LLM: %+v", r)
	}
	cfg.LLM.Model = "tiny"
	cfg.LLM.CPULibraryDir = llm.CPULibraryCache()
	r := checkCPU(cfg, env)
	t.Logf("%s %s", r.Status.mark(), r.Detail)
	if r.Status != checkOK || !strings.Contains(r.Detail, "llama.cpp CPU variant ") || !strings.Contains(r.Detail, cfg.LLM.CPULibraryDir) {
		t.Errorf("cache: %+v", r)
	}
}

func TestDoctorUsageAndBadConfig(t *testing.T) {
	if code, _ := runDoctor(t, doctorEnv{}, "extra"); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nslm:\n  threshold: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runDoctor(t, doctorEnv{}, "--config", bad)
	if code != 2 || !strings.Contains(out, "slm.threshold") {
		t.Errorf("bad config: exit %d, want 2 and the problem:\n%s", code, out)
	}
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
