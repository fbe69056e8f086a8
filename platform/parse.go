package platform

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// This file holds the parsers of the files Detect reads, apart from the
// I/O so they are table-tested on strings.

// parseModel reads /proc/device-tree/model: a NUL-terminated string.
func parseModel(s string) string {
	return strings.TrimSpace(strings.TrimRight(s, "\x00"))
}

// parseCompatible reads /proc/device-tree/compatible: NUL-separated
// strings, most specific first.
func parseCompatible(s string) []string {
	var out []string
	for _, c := range strings.Split(s, "\x00") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// tegraRe matches the first line of /etc/nv_tegra_release, e.g.
// "# R36 (release), REVISION: 4.0, GCID: …".
var tegraRe = regexp.MustCompile(`^# R(\d+) \(release\), REVISION: (\d+)\.(\d+)`)

// parseTegraRelease returns the L4T version, e.g. "36.4.0".
func parseTegraRelease(s string) (string, error) {
	first, _, _ := strings.Cut(s, "\n")
	m := tegraRe.FindStringSubmatch(first)
	if m == nil {
		return "", fmt.Errorf("unrecognised release line %q", first)
	}
	return m[1] + "." + m[2] + "." + m[3], nil
}

// parseCPUInfo counts the processors of /proc/cpuinfo (logical) and the
// distinct (physical id, core id) pairs (physical). Arm kernels list no
// core ids; there each processor is a core.
func parseCPUInfo(s string) (logical, physical int) {
	type core struct{ pkg, id string }
	cores := map[core]bool{}
	allHaveIDs := true
	var cur core
	var inProc, hasPkg, hasCore bool
	flush := func() {
		if !inProc {
			return
		}
		logical++
		if hasPkg && hasCore {
			cores[cur] = true
		} else {
			allHaveIDs = false
		}
		cur, inProc, hasPkg, hasCore = core{}, false, false, false
	}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			if strings.TrimSpace(line) == "" {
				flush()
			}
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			flush()
			inProc = true
		case "physical id":
			cur.pkg, hasPkg = v, true
		case "core id":
			cur.id, hasCore = v, true
		}
	}
	flush()
	if allHaveIDs && len(cores) > 0 {
		return logical, len(cores)
	}
	return logical, logical
}

// parseCPUList counts the CPUs of a kernel CPU list such as
// /sys/devices/system/cpu/online: "0-3", "0,2-5,7".
func parseCPUList(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty CPU list")
	}
	n := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return 0, fmt.Errorf("CPU list %q: bad entry %q", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		n += b - a + 1
	}
	return n, nil
}

// parseMeminfo returns MemTotal and MemAvailable of /proc/meminfo in
// bytes. Kernels before 3.14 have no MemAvailable; then it is estimated as
// MemFree + Buffers + Cached.
func parseMeminfo(s string) (total, available uint64, err error) {
	kb := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %q is not a number", k, f[0])
		}
		kb[k] = n
	}
	t, ok := kb["MemTotal"]
	if !ok || t == 0 {
		return 0, 0, errors.New("no MemTotal")
	}
	a, ok := kb["MemAvailable"]
	if !ok {
		a = kb["MemFree"] + kb["Buffers"] + kb["Cached"]
	}
	return t << 10, a << 10, nil
}

// parseThermalTemp reads a thermal zone's temp (millidegrees Celsius).
// ok is false for a value that is not a plausible reading: Jetson Orin
// Nano's absent CV clusters report -256000.
func parseThermalTemp(s string) (celsius float64, ok bool) {
	m, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, false
	}
	c := float64(m) / 1000
	if c < -50 || c > 200 {
		return 0, false
	}
	return c, true
}

// parseThrottled decodes the firmware's get_throttled value, a hex
// number with or without 0x ("50005", "0x50005", or vcgencmd's
// "throttled=0x50005").
func parseThrottled(s string) (Throttle, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "throttled=")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return Throttle{}, fmt.Errorf("throttle state %q is not a hex number", s)
	}
	bit := func(n uint) bool { return v&(1<<n) != 0 }
	return Throttle{
		Raw:                   uint32(v),
		UnderVoltage:          bit(0),
		FreqCapped:            bit(1),
		Throttled:             bit(2),
		SoftTempLimit:         bit(3),
		UnderVoltageOccurred:  bit(16),
		FreqCappedOccurred:    bit(17),
		ThrottledOccurred:     bit(18),
		SoftTempLimitOccurred: bit(19),
	}, nil
}

// parseUptime reads /proc/uptime: seconds since boot, then idle seconds.
func parseUptime(s string) (time.Duration, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("empty uptime")
	}
	sec, err := strconv.ParseFloat(f[0], 64)
	if err != nil || sec < 0 {
		return 0, fmt.Errorf("uptime %q is not a number of seconds", f[0])
	}
	return time.Duration(sec * float64(time.Second)).Round(10 * time.Millisecond), nil
}

// parseLoadavg reads the three load averages of /proc/loadavg.
func parseLoadavg(s string) ([3]float64, error) {
	var l [3]float64
	f := strings.Fields(s)
	if len(f) < 3 {
		return l, fmt.Errorf("load averages %q: want 3 numbers", strings.TrimSpace(s))
	}
	for i := range l {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || v < 0 {
			return l, fmt.Errorf("load average %q is not a number", f[i])
		}
		l[i] = v
	}
	return l, nil
}

// classify names the board family. It goes by the SoC where the model
// string is unknown: a Pi 400 or Compute Module 4 is a bcm2711 like the Pi
// 4 and behaves like one.
func classify(model string, compatible []string, l4t string) Kind {
	has := func(prefix string) bool {
		for _, c := range compatible {
			if strings.HasPrefix(c, prefix) {
				return true
			}
		}
		return false
	}
	switch {
	case strings.Contains(model, "Raspberry Pi 5") || strings.Contains(model, "Compute Module 5") ||
		has("raspberrypi,5") || has("brcm,bcm2712"):
		return KindRaspberryPi5
	case strings.Contains(model, "Raspberry Pi 4") || strings.Contains(model, "Raspberry Pi 400") ||
		strings.Contains(model, "Compute Module 4") || has("raspberrypi,4") || has("brcm,bcm2711"):
		return KindRaspberryPi4
	case strings.HasPrefix(model, "Raspberry Pi") || has("raspberrypi,"):
		return KindRaspberryPi
	// P3767 SKUs 0003, 0004 and 0005 are the Orin Nano modules (0000 and
	// 0001 are Orin NX on the same carrier).
	case strings.Contains(model, "Orin Nano") || has("nvidia,p3767-0003") || has("nvidia,p3767-0004") || has("nvidia,p3767-0005"):
		return KindJetsonOrinNano
	case l4t != "" || strings.Contains(model, "Jetson") || has("nvidia,tegra"):
		return KindJetson
	}
	return KindGeneric
}
