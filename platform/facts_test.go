package platform

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fixtureRoot copies testdata/name into a temp dir and returns it. Go
// module zips forbid ':' in file names, so fixtures spell the kernel's
// "soc:firmware" as "soc%3Afirmware"; the copy restores the real names.
func fixtureRoot(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("testdata", name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, strings.ReplaceAll(rel, "%3A", ":"))
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy fixture %s: %v", name, err)
	}
	return dst
}

func TestDetectFixtures(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		fixture       string
		board         string
		kind          Kind
		l4t           string
		cores, phys   int
		threads       int
		memTotal      uint64
		memAvailable  uint64
		zones         int
		mainZone      string
		mainC         float64
		throttle      string // "" when there is none
		uptime        time.Duration
		load          [3]float64
		compatibleLen int
	}{
		{
			fixture: "pi4", board: "Raspberry Pi 4 Model B Rev 1.4", kind: KindRaspberryPi4,
			cores: 4, phys: 4, threads: 3,
			memTotal: 3884128 << 10, memAvailable: 3126416 << 10,
			zones: 1, mainZone: "cpu-thermal", mainC: 48.686,
			throttle: "under-voltage, throttled since boot",
			uptime:   356482*time.Second + 310*time.Millisecond,
			load:     [3]float64{0.52, 0.40, 0.33}, compatibleLen: 2,
		},
		{
			fixture: "pi5", board: "Raspberry Pi 5 Model B Rev 1.0", kind: KindRaspberryPi5,
			cores: 4, phys: 4, threads: 3,
			memTotal: 8245136 << 10, memAvailable: 7512880 << 10,
			zones: 1, mainZone: "cpu-thermal", mainC: 55.35,
			throttle: "none",
			uptime:   8123*time.Second + 770*time.Millisecond,
			load:     [3]float64{1.07, 0.81, 0.62}, compatibleLen: 2,
		},
		{
			fixture: "jetson-orin-nano", board: "NVIDIA Jetson Orin Nano Developer Kit", kind: KindJetsonOrinNano,
			l4t: "36.4.0", cores: 6, phys: 6, threads: 4,
			memTotal: 7620172 << 10, memAvailable: 6120544 << 10,
			// 9 zones, of which the three absent CV clusters read -256 °C.
			zones: 6, mainZone: "cpu-thermal", mainC: 47.218,
			uptime: 92711*time.Second + 400*time.Millisecond,
			load:   [3]float64{0.18, 0.25, 0.27}, compatibleLen: 3,
		},
		{
			fixture: "generic-x86", board: "Dell Inc. Latitude 5420", kind: KindGeneric,
			cores: 8, phys: 4, threads: 3,
			memTotal: 16090012 << 10, memAvailable: 12657320 << 10,
			zones: 3, mainZone: "x86_pkg_temp", mainC: 52,
			uptime: 1234567*time.Second + 890*time.Millisecond,
			load:   [3]float64{2.31, 1.96, 1.70},
		},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			f, err := Detect(fixtureRoot(t, tc.fixture))
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if f.Board != tc.board || f.Kind != tc.kind || f.L4T != tc.l4t {
				t.Errorf("board, kind, l4t = %q, %q, %q; want %q, %q, %q", f.Board, f.Kind, f.L4T, tc.board, tc.kind, tc.l4t)
			}
			if len(f.Compatible) != tc.compatibleLen {
				t.Errorf("compatible = %q, want %d entries", f.Compatible, tc.compatibleLen)
			}
			if f.Arch != runtime.GOARCH {
				t.Errorf("arch = %q, want hedge's own %q", f.Arch, runtime.GOARCH)
			}
			if f.Cores != tc.cores || f.PhysicalCores != tc.phys {
				t.Errorf("cores = %d/%d physical, want %d/%d", f.Cores, f.PhysicalCores, tc.cores, tc.phys)
			}
			if got := f.DefaultThreads(); got != tc.threads {
				t.Errorf("DefaultThreads = %d, want %d", got, tc.threads)
			}
			if f.MemTotal != tc.memTotal || f.MemAvailable != tc.memAvailable {
				t.Errorf("memory = %d/%d, want %d/%d", f.MemAvailable, f.MemTotal, tc.memAvailable, tc.memTotal)
			}
			if f.MemTotal < gib/2 {
				t.Errorf("memory total %d is not in bytes", f.MemTotal)
			}
			if len(f.Thermal) != tc.zones {
				t.Errorf("thermal zones = %+v, want %d", f.Thermal, tc.zones)
			}
			z, ok := f.MainZone()
			if !ok || z.Type != tc.mainZone || !near(z.Celsius, tc.mainC) {
				t.Errorf("main zone = %+v (ok %v), want %s at %.3f", z, ok, tc.mainZone, tc.mainC)
			}
			switch {
			case tc.throttle == "" && f.Throttle != nil:
				t.Errorf("throttle = %+v, want none read", *f.Throttle)
			case tc.throttle != "" && f.Throttle == nil:
				t.Errorf("throttle not read, want %q", tc.throttle)
			case tc.throttle != "" && f.Throttle.String() != tc.throttle:
				t.Errorf("throttle = %q, want %q", f.Throttle.String(), tc.throttle)
			}
			if f.Uptime != tc.uptime {
				t.Errorf("uptime = %v, want %v", f.Uptime, tc.uptime)
			}
			for i := range f.Load {
				if !near(f.Load[i], tc.load[i]) {
					t.Errorf("load = %v, want %v", f.Load, tc.load)
					break
				}
			}
		})
	}
}

func TestDetectThermalOrder(t *testing.T) {
	root := fixtureRoot(t, "generic-x86")
	// thermal_zone10 must sort after thermal_zone2, not between 1 and 2.
	z := filepath.Join(root, "sys/class/thermal/thermal_zone10")
	if err := os.MkdirAll(z, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(z, "type"), []byte("iwlwifi_1\n"), 0o644)
	os.WriteFile(filepath.Join(z, "temp"), []byte("41000\n"), 0o644)
	f, err := Detect(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, z := range f.Thermal {
		names = append(names, z.Zone)
	}
	if got := strings.Join(names, " "); got != "thermal_zone0 thermal_zone1 thermal_zone2 thermal_zone10" {
		t.Errorf("zones in order %s", got)
	}
}

// TestDetectBrokenSource: a file that exists but is garbage is reported by
// name, and every other fact is still read.
func TestDetectBrokenSource(t *testing.T) {
	root := fixtureRoot(t, "pi4")
	if err := os.WriteFile(filepath.Join(root, "proc/meminfo"), []byte("MemTotal: lots kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/loadavg"), []byte("\x00\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Detect(root)
	if err == nil {
		t.Fatal("Detect accepted a garbage /proc/meminfo")
	}
	for _, want := range []string{"/proc/meminfo", "/proc/loadavg"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if f.LoadKnown || f.Template()["load"] != "unknown" {
		t.Errorf("a garbage /proc/loadavg reads as load %v", f.Load)
	}
	if f.Kind != KindRaspberryPi4 || f.Cores != 4 || f.MemTotal != 0 {
		t.Errorf("facts beside the broken files: kind %s, cores %d, memory %d", f.Kind, f.Cores, f.MemTotal)
	}
}

func TestDetectMissingRoot(t *testing.T) {
	if _, err := Detect(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("Detect of a missing root returned no error")
	}
	// An empty root is a device we know nothing of: generic, with the
	// process's own CPU count.
	f, err := Detect(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != KindGeneric || f.Cores != runtime.NumCPU() || f.Throttle != nil || f.MemTotal != 0 {
		t.Errorf("empty root: %+v", f)
	}
	if tpl := f.Template(); tpl["memory"] != "unknown" || tpl["board"] != "unknown" || tpl["temperature"] != "unknown" {
		t.Errorf("empty root template: %v", tpl)
	}
}

// TestDetectHost reads this machine's real /proc and /sys.
func TestDetectHost(t *testing.T) {
	f, err := Detect("/")
	if err != nil {
		t.Fatalf("Detect(/): %v", err)
	}
	t.Logf("this machine: board %q, kind %s, %d cores (%d physical), %.1f GiB, load %v, %d thermal zones",
		f.Board, f.Kind, f.Cores, f.PhysicalCores, float64(f.MemTotal)/(1<<30), f.Load, len(f.Thermal))
	if f.Cores < 1 || f.PhysicalCores < 1 || f.PhysicalCores > f.Cores {
		t.Errorf("cores = %d, physical %d", f.Cores, f.PhysicalCores)
	}
	if f.MemTotal == 0 || f.MemAvailable > f.MemTotal {
		t.Errorf("memory = %d available of %d", f.MemAvailable, f.MemTotal)
	}
	if f.Uptime <= 0 {
		t.Errorf("uptime = %v", f.Uptime)
	}
	if n := f.DefaultThreads(); n < 1 || n > 4 {
		t.Errorf("DefaultThreads = %d", n)
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }
