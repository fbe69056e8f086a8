package platform

import (
	"strings"
	"testing"
	"time"
)

func TestParseModelCompatible(t *testing.T) {
	if got := parseModel("Raspberry Pi 5 Model B Rev 1.0\x00"); got != "Raspberry Pi 5 Model B Rev 1.0" {
		t.Errorf("parseModel = %q", got)
	}
	got := parseCompatible("nvidia,p3768-0000+p3767-0005\x00nvidia,p3767-0005\x00nvidia,tegra234\x00")
	if strings.Join(got, "|") != "nvidia,p3768-0000+p3767-0005|nvidia,p3767-0005|nvidia,tegra234" {
		t.Errorf("parseCompatible = %q", got)
	}
	if got := parseCompatible("\x00\x00"); got != nil {
		t.Errorf("parseCompatible(empty) = %q", got)
	}
}

func TestParseTegraRelease(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024\n", "36.4.0"},
		{"# R35 (release), REVISION: 5.0, GCID: 35550185, BOARD: t186ref, EABI: aarch64, DATE: Tue Feb 20 04:46:31 UTC 2024\n# KERNEL_VARIANT: oot", "35.5.0"},
		{"# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64", "36.4.3"},
		{"", ""},
		{"R36 REVISION 4.0", ""},
	} {
		got, err := parseTegraRelease(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("parseTegraRelease(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseCPUInfo(t *testing.T) {
	arm := "processor\t: 0\nCPU part\t: 0xd08\n\nprocessor\t: 1\nCPU part\t: 0xd08\n\nHardware\t: BCM2835\n"
	smt := "processor\t: 0\nphysical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 1\nphysical id\t: 0\ncore id\t\t: 0\n\n" +
		"processor\t: 2\nphysical id\t: 0\ncore id\t\t: 1\n\nprocessor\t: 3\nphysical id\t: 0\ncore id\t\t: 1\n"
	twoSockets := "processor: 0\nphysical id: 0\ncore id: 0\n\nprocessor: 1\nphysical id: 1\ncore id: 0\n"
	for _, tc := range []struct {
		name        string
		in          string
		logical, ph int
	}{
		{"arm without core ids", arm, 2, 2},
		{"smt siblings", smt, 4, 2},
		{"same core id on two sockets", twoSockets, 2, 2},
		{"no trailing blank line", "processor\t: 0\n", 1, 1},
		{"empty", "", 0, 0},
		{"garbage", "\xff\xfe not cpuinfo", 0, 0},
	} {
		l, p := parseCPUInfo(tc.in)
		if l != tc.logical || p != tc.ph {
			t.Errorf("%s: parseCPUInfo = %d, %d; want %d, %d", tc.name, l, p, tc.logical, tc.ph)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		bad  bool
	}{
		{"0-3\n", 4, false},
		{"0", 1, false},
		{"0,2-5,7", 6, false},
		{"0-5", 6, false},
		{"", 0, true},
		{"3-1", 0, true},
		{"a-b", 0, true},
		{"0,,1", 0, true},
	} {
		got, err := parseCPUList(tc.in)
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("parseCPUList(%q) = %d, %v; want %d (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	for _, tc := range []struct {
		name         string
		in           string
		total, avail uint64
		bad          bool
	}{
		{"modern", "MemTotal:        3884128 kB\nMemFree:  100 kB\nMemAvailable:    3126416 kB\n", 3884128 << 10, 3126416 << 10, false},
		{"pre-3.14 kernel estimates available", "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n", 1000 << 10, 420 << 10, false},
		{"HugePages lines without unit", "MemTotal: 1000 kB\nMemAvailable: 10 kB\nHugePages_Total:       0\n", 1000 << 10, 10 << 10, false},
		{"no MemTotal", "MemFree: 100 kB\n", 0, 0, true},
		{"not a number", "MemTotal: lots kB\n", 0, 0, true},
		{"empty", "", 0, 0, true},
	} {
		total, avail, err := parseMeminfo(tc.in)
		if total != tc.total || avail != tc.avail || (err != nil) != tc.bad {
			t.Errorf("%s: parseMeminfo = %d, %d, %v; want %d, %d (error %v)", tc.name, total, avail, err, tc.total, tc.avail, tc.bad)
		}
	}
}

func TestParseThermalTemp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"48686\n", 48.686, true},
		{"0", 0, true},
		{"-5000", -5, true},
		{"-256000", 0, false}, // Orin Nano's absent CV cluster
		{"250000", 0, false},
		{"", 0, false},
		{"hot", 0, false},
	} {
		got, ok := parseThermalTemp(tc.in)
		if ok != tc.ok || !near(got, tc.want) {
			t.Errorf("parseThermalTemp(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseThrottled(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		raw  uint32
		bad  bool
	}{
		{"0\n", "none", 0, false},
		{"50000", "under-voltage, throttled since boot", 0x50000, false},
		{"0x50005", "under-voltage, throttled now; under-voltage, throttled since boot", 0x50005, false},
		{"throttled=0x80008", "soft temperature limit now; soft temperature limit since boot", 0x80008, false},
		{"0x20002", "frequency capped now; frequency capped since boot", 0x20002, false},
		{"", "", 0, true},
		{"zz", "", 0, true},
		{"1ffffffff", "", 0, true},
	} {
		got, err := parseThrottled(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("parseThrottled(%q) error = %v, want error %v", tc.in, err, tc.bad)
			continue
		}
		if err == nil && (got.String() != tc.want || got.Raw != tc.raw) {
			t.Errorf("parseThrottled(%q) = %#x %q; want %#x %q", tc.in, got.Raw, got.String(), tc.raw, tc.want)
		}
	}
}

func TestParseUptimeLoadavg(t *testing.T) {
	if d, err := parseUptime("356482.31 1401234.90\n"); err != nil || d != 356482*time.Second+310*time.Millisecond {
		t.Errorf("parseUptime = %v, %v", d, err)
	}
	for _, bad := range []string{"", "-1 2", "soon"} {
		if _, err := parseUptime(bad); err == nil {
			t.Errorf("parseUptime(%q) accepted", bad)
		}
	}
	if l, err := parseLoadavg("0.52 0.40 0.33 1/245 12345\n"); err != nil || l != [3]float64{0.52, 0.40, 0.33} {
		t.Errorf("parseLoadavg = %v, %v", l, err)
	}
	for _, bad := range []string{"", "0.1 0.2", "0.1 x 0.3", "-1 0 0"} {
		if _, err := parseLoadavg(bad); err == nil {
			t.Errorf("parseLoadavg(%q) accepted", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		model  string
		compat []string
		l4t    string
		want   Kind
	}{
		{"Raspberry Pi 4 Model B Rev 1.5", nil, "", KindRaspberryPi4},
		{"Raspberry Pi 400 Rev 1.0", []string{"raspberrypi,400", "brcm,bcm2711"}, "", KindRaspberryPi4},
		{"Raspberry Pi Compute Module 4 Rev 1.1", []string{"raspberrypi,4-compute-module", "brcm,bcm2711"}, "", KindRaspberryPi4},
		{"", []string{"brcm,bcm2711"}, "", KindRaspberryPi4},
		{"Raspberry Pi 5 Model B Rev 1.0", nil, "", KindRaspberryPi5},
		{"Raspberry Pi Compute Module 5 Rev 1.0", []string{"raspberrypi,5-compute-module", "brcm,bcm2712"}, "", KindRaspberryPi5},
		{"Raspberry Pi 3 Model B Plus Rev 1.3", []string{"raspberrypi,3-model-b-plus", "brcm,bcm2837"}, "", KindRaspberryPi},
		{"NVIDIA Jetson Orin Nano Developer Kit", nil, "36.4.0", KindJetsonOrinNano},
		{"", []string{"nvidia,p3767-0004", "nvidia,tegra234"}, "", KindJetsonOrinNano},
		{"NVIDIA Jetson Orin NX Engineering Reference Developer Kit", []string{"nvidia,p3768-0000+p3767-0000", "nvidia,p3767-0000", "nvidia,tegra234"}, "36.3.0", KindJetson},
		{"", nil, "35.5.0", KindJetson},
		{"Dell Inc. Latitude 5420", nil, "", KindGeneric},
		{"", nil, "", KindGeneric},
	} {
		if got := classify(tc.model, tc.compat, tc.l4t); got != tc.want {
			t.Errorf("classify(%q, %q, %q) = %s, want %s", tc.model, tc.compat, tc.l4t, got, tc.want)
		}
	}
}
