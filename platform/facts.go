package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Kind is the family of board hedge runs on; it picks defaults such as
// thread counts and the -mcpu of builds.
type Kind string

// The kinds of board hedge tells apart.
const (
	KindRaspberryPi4   Kind = "raspberry-pi-4"
	KindRaspberryPi5   Kind = "raspberry-pi-5"
	KindRaspberryPi    Kind = "raspberry-pi" // another Raspberry Pi model
	KindJetsonOrinNano Kind = "jetson-orin-nano"
	KindJetson         Kind = "jetson" // another NVIDIA Jetson module
	KindGeneric        Kind = "generic"
)

// Facts describe the device at one moment. Fields that could not be read
// keep their zero value (Board "", Cores 0, Thermal nil, Throttle nil).
type Facts struct {
	// Now is when the facts were read.
	Now time.Time
	// Board is the device's model as the firmware names it, e.g.
	// "Raspberry Pi 4 Model B Rev 1.4"; DMI vendor and product on PCs.
	Board string
	// Compatible is the device tree's compatible list, most specific first.
	Compatible []string
	Kind       Kind
	// L4T is the NVIDIA Linux for Tegra release ("36.4.0") on Jetsons.
	L4T string
	// Arch is hedge's own architecture (runtime.GOARCH).
	Arch string
	// Cores is the number of online logical CPUs; PhysicalCores counts
	// cores once however many SMT threads they run (equal on Arm boards).
	Cores         int
	PhysicalCores int
	// MemTotal and MemAvailable are in bytes (MemAvailable: what can be
	// allocated without swapping, per /proc/meminfo).
	MemTotal     uint64
	MemAvailable uint64
	Thermal      []ThermalZone
	// Throttle is the Raspberry Pi firmware's throttling state; nil
	// elsewhere.
	Throttle *Throttle
	Uptime   time.Duration
	// Load is the 1, 5 and 15 minute load averages; LoadKnown reports
	// whether they were read (an idle board may truly be at 0.00).
	Load      [3]float64
	LoadKnown bool
}

// ThermalZone is one kernel thermal zone's reading.
type ThermalZone struct {
	// Zone is the sysfs name, e.g. "thermal_zone0"; Type the sensor's
	// name, e.g. "cpu-thermal" or "x86_pkg_temp".
	Zone    string
	Type    string
	Celsius float64
}

// Throttle decodes the Raspberry Pi firmware's get_throttled bits: the
// "now" flags describe the present, the "Occurred" flags anything since boot.
type Throttle struct {
	Raw                   uint32
	UnderVoltage          bool // bit 0
	FreqCapped            bool // bit 1
	Throttled             bool // bit 2
	SoftTempLimit         bool // bit 3
	UnderVoltageOccurred  bool // bit 16
	FreqCappedOccurred    bool // bit 17
	ThrottledOccurred     bool // bit 18
	SoftTempLimitOccurred bool // bit 19
}

// Detect reads the device's facts below root ("/" normally; a testdata
// directory in tests). Sources that do not exist on this kind of device
// (no device tree on a PC, no firmware throttling outside a Pi) are
// skipped; a source that exists but cannot be read or parsed is reported in
// the returned error, and Facts still holds everything else.
func Detect(root string) (Facts, error) {
	if fi, err := os.Stat(root); err != nil {
		return Facts{}, fmt.Errorf("device facts: %w", err)
	} else if !fi.IsDir() {
		return Facts{}, fmt.Errorf("device facts: root %s is not a directory", root)
	}
	r := &reader{root: root}
	f := Facts{Now: time.Now(), Arch: runtime.GOARCH}
	var err error

	if s, ok := r.read("proc/device-tree/model"); ok {
		f.Board = parseModel(s)
	}
	if s, ok := r.read("proc/device-tree/compatible"); ok {
		f.Compatible = parseCompatible(s)
	}
	if s, ok := r.read("etc/nv_tegra_release"); ok {
		f.L4T, err = parseTegraRelease(s)
		r.note("etc/nv_tegra_release", err)
	}
	if f.Board == "" {
		f.Board = readDMIBoard(r)
	}
	f.Kind = classify(f.Board, f.Compatible, f.L4T)

	if s, ok := r.read("proc/cpuinfo"); ok {
		f.Cores, f.PhysicalCores = parseCPUInfo(s)
	}
	if s, ok := r.read("sys/devices/system/cpu/online"); ok {
		n, err := parseCPUList(s)
		r.note("sys/devices/system/cpu/online", err)
		if n > 0 {
			f.Cores = n
		}
	}
	if f.Cores == 0 {
		f.Cores = runtime.NumCPU()
	}
	if f.PhysicalCores == 0 || f.PhysicalCores > f.Cores {
		f.PhysicalCores = f.Cores
	}

	if s, ok := r.read("proc/meminfo"); ok {
		f.MemTotal, f.MemAvailable, err = parseMeminfo(s)
		r.note("proc/meminfo", err)
	}
	f.Thermal = readThermal(r)
	// The firmware device hangs off the soc bus, soc:firmware on a Pi 4;
	// newer device trees put a unit address in the bus name
	// (soc@107c000000), so both are globbed.
	if p := r.glob("sys/devices/platform/soc*/soc*:firmware/get_throttled"); p != "" {
		if s, ok := r.read(p); ok {
			t, err := parseThrottled(s)
			r.note(p, err)
			if err == nil {
				f.Throttle = &t
			}
		}
	}
	if s, ok := r.read("proc/uptime"); ok {
		f.Uptime, err = parseUptime(s)
		r.note("proc/uptime", err)
	}
	if s, ok := r.read("proc/loadavg"); ok {
		f.Load, err = parseLoadavg(s)
		f.LoadKnown = err == nil
		r.note("proc/loadavg", err)
	}
	return f, errors.Join(r.errs...)
}

// reader reads files below root and collects the problems of those that
// exist but cannot be read or parsed.
type reader struct {
	root string
	errs []error
}

// read returns the file's content; a missing file is ok == false and no
// problem, an unreadable one a problem.
func (r *reader) read(rel string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(r.root, rel))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.errs = append(r.errs, fmt.Errorf("device facts: %w", err))
		}
		return "", false
	}
	return string(b), true
}

// note records a parse error of the file rel.
func (r *reader) note(rel string, err error) {
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("device facts: /%s: %w", rel, err))
	}
}

// glob returns the first match of pattern below root, relative to root, or
// "" when nothing matches.
func (r *reader) glob(pattern string) string {
	m, _ := filepath.Glob(filepath.Join(r.root, pattern)) // constant, valid patterns only
	if len(m) == 0 {
		return ""
	}
	sort.Strings(m)
	rel, err := filepath.Rel(r.root, m[0])
	if err != nil {
		return ""
	}
	return rel
}

// readDMIBoard names a PC by its DMI vendor and product, e.g. "Dell Inc.
// OptiPlex 7090"; "" when the firmware exposes no DMI.
func readDMIBoard(r *reader) string {
	vendor, _ := r.read("sys/class/dmi/id/sys_vendor")
	product, _ := r.read("sys/class/dmi/id/product_name")
	return strings.TrimSpace(strings.TrimSpace(vendor) + " " + strings.TrimSpace(product))
}

// readThermal reads every thermal zone. A zone whose sensor cannot be read
// right now (sysfs answers EINVAL or ENODATA for some ACPI zones) or that
// reports an impossible value is left out: it is not a fault of hedge's.
func readThermal(r *reader) []ThermalZone {
	dirs, _ := filepath.Glob(filepath.Join(r.root, "sys/class/thermal/thermal_zone*")) // constant pattern
	var zones []ThermalZone
	for _, d := range dirs {
		raw, err := os.ReadFile(filepath.Join(d, "temp"))
		if err != nil {
			continue
		}
		c, ok := parseThermalTemp(string(raw))
		if !ok {
			continue
		}
		typ, _ := os.ReadFile(filepath.Join(d, "type"))
		zones = append(zones, ThermalZone{Zone: filepath.Base(d), Type: strings.TrimSpace(string(typ)), Celsius: c})
	}
	sort.Slice(zones, func(i, j int) bool { return zoneNumber(zones[i].Zone) < zoneNumber(zones[j].Zone) })
	return zones
}

func zoneNumber(zone string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(zone, "thermal_zone"))
	if err != nil {
		return math.MaxInt
	}
	return n
}
