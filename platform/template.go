package platform

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultThreads is the number of threads hedge gives compute-heavy work
// (llama.cpp, ONNX Runtime intra-op) when the config leaves it at 0:
//
//   - physical cores, not SMT threads: two siblings share the SIMD units
//     that matrix products keep busy, so the second adds little but
//     contention;
//   - one core left to the system on machines with 4 or more, so the MQTT
//     client, the socket, the OS and the watchdog stay responsive while a
//     generation runs (on a Pi 4 or 5: 3 of 4);
//   - at most 4: token generation on these boards is bound by memory
//     bandwidth and stops scaling at about 4 threads, while every extra
//     busy core adds heat and brings thermal throttling sooner (an Orin
//     Nano's 6 cores: 4).
//
// Under a CPU quota smaller than the machine, set the thread count in the
// config.
func (f Facts) DefaultThreads() int {
	n := f.PhysicalCores
	if n <= 0 {
		n = f.Cores
	}
	switch {
	case n <= 0:
		return 1
	case n >= 4:
		return min(n-1, 4)
	}
	return n
}

// Template returns the facts as text for intent answers: time, date,
// uptime, load, temperature, board, memory, throttling, kind, arch, cores.
// A fact that could not be read is "unknown".
func (f Facts) Template() map[string]string {
	const unknown = "unknown"
	t := map[string]string{
		"time":        unknown,
		"date":        unknown,
		"uptime":      unknown,
		"load":        unknown,
		"temperature": unknown,
		"board":       unknown,
		"memory":      unknown,
		"throttling":  unknown,
		"kind":        string(f.Kind),
		"arch":        f.Arch,
		"cores":       strconv.Itoa(f.Cores),
	}
	if !f.Now.IsZero() {
		t["time"] = f.Now.Format("15:04")
		t["date"] = f.Now.Format("Monday, 2 January 2006")
	}
	if f.Uptime > 0 {
		t["uptime"] = humanDuration(f.Uptime)
	}
	if f.LoadKnown {
		t["load"] = fmt.Sprintf("%.2f, %.2f, %.2f", f.Load[0], f.Load[1], f.Load[2])
	}
	if z, ok := f.MainZone(); ok {
		t["temperature"] = fmt.Sprintf("%.1f °C", z.Celsius)
	}
	if f.Board != "" {
		t["board"] = f.Board
	}
	if f.MemTotal > 0 {
		t["memory"] = fmt.Sprintf("%s free of %s", gib(f.MemAvailable), gib(f.MemTotal))
	}
	if f.Throttle != nil {
		t["throttling"] = f.Throttle.String()
	}
	return t
}

// MainZone picks the thermal zone that best stands for the device's
// temperature: the CPU's (cpu-thermal on a Pi or Jetson, x86_pkg_temp on
// Intel PCs), else the hottest zone. ok is false without any zone.
func (f Facts) MainZone() (ThermalZone, bool) {
	if len(f.Thermal) == 0 {
		return ThermalZone{}, false
	}
	for _, z := range f.Thermal {
		ty := strings.ToLower(z.Type)
		if strings.HasPrefix(ty, "cpu") || ty == "x86_pkg_temp" {
			return z, true
		}
	}
	hot := f.Thermal[0]
	for _, z := range f.Thermal[1:] {
		if z.Celsius > hot.Celsius {
			hot = z
		}
	}
	return hot, true
}

// String describes the throttling state in words, e.g. "none" or
// "under-voltage now; throttled since boot".
func (t Throttle) String() string {
	var now, past []string
	add := func(list *[]string, on bool, what string) {
		if on {
			*list = append(*list, what)
		}
	}
	add(&now, t.UnderVoltage, "under-voltage")
	add(&now, t.FreqCapped, "frequency capped")
	add(&now, t.Throttled, "throttled")
	add(&now, t.SoftTempLimit, "soft temperature limit")
	add(&past, t.UnderVoltageOccurred, "under-voltage")
	add(&past, t.FreqCappedOccurred, "frequency capped")
	add(&past, t.ThrottledOccurred, "throttled")
	add(&past, t.SoftTempLimitOccurred, "soft temperature limit")
	var parts []string
	if len(now) > 0 {
		parts = append(parts, strings.Join(now, ", ")+" now")
	}
	if len(past) > 0 {
		parts = append(parts, strings.Join(past, ", ")+" since boot")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// humanDuration writes d as days, hours and minutes: "3 days, 2 hours, 5
// minutes".
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return "less than a minute"
	}
	m := int64(d / time.Minute)
	days, hours, mins := m/(24*60), m/60%24, m%60
	var parts []string
	unit := func(n int64, name string) {
		if n == 0 {
			return
		}
		if n != 1 {
			name += "s"
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, name))
	}
	unit(days, "day")
	unit(hours, "hour")
	unit(mins, "minute")
	return strings.Join(parts, ", ")
}

func gib(b uint64) string {
	return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
}
