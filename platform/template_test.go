package platform

import (
	"testing"
	"time"
)

func TestDefaultThreads(t *testing.T) {
	for _, tc := range []struct {
		cores, physical, want int
	}{
		{0, 0, 1},
		{1, 1, 1},
		{2, 2, 2},
		{3, 3, 3},
		{4, 4, 3},  // Pi 4, Pi 5: one core for the system
		{6, 6, 4},  // Orin Nano: capped
		{8, 4, 3},  // 4 cores with SMT: physical cores count
		{16, 8, 4}, // big PC: capped
		{4, 0, 3},  // physical unknown: logical cores
	} {
		f := Facts{Cores: tc.cores, PhysicalCores: tc.physical}
		if got := f.DefaultThreads(); got != tc.want {
			t.Errorf("DefaultThreads(%d cores, %d physical) = %d, want %d", tc.cores, tc.physical, got, tc.want)
		}
	}
}

func TestTemplate(t *testing.T) {
	f, err := Detect(fixtureRoot(t, "pi4"))
	if err != nil {
		t.Fatal(err)
	}
	f.Now = time.Date(2026, 11, 28, 14, 5, 0, 0, time.UTC)
	got := f.Template()
	want := map[string]string{
		"time":        "14:05",
		"date":        "Saturday, 28 November 2026",
		"uptime":      "4 days, 3 hours, 1 minute",
		"load":        "0.52, 0.40, 0.33",
		"temperature": "48.7 °C",
		"board":       "Raspberry Pi 4 Model B Rev 1.4",
		"memory":      "3.0 GiB free of 3.7 GiB",
		"throttling":  "under-voltage, throttled since boot",
		"kind":        "raspberry-pi-4",
		"arch":        f.Arch,
		"cores":       "4",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("template[%q] = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("template has %d keys, want %d: %v", len(got), len(want), got)
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{30 * time.Second, "less than a minute"},
		{time.Minute, "1 minute"},
		{2*time.Hour + 59*time.Second, "2 hours"},
		{25 * time.Hour, "1 day, 1 hour"},
		{49*time.Hour + 3*time.Minute, "2 days, 1 hour, 3 minutes"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestMainZoneFallsBackToHottest(t *testing.T) {
	f := Facts{Thermal: []ThermalZone{{Zone: "thermal_zone0", Type: "acpitz", Celsius: 30}, {Zone: "thermal_zone1", Type: "pch_cannonlake", Celsius: 44}}}
	if z, ok := f.MainZone(); !ok || z.Type != "pch_cannonlake" {
		t.Errorf("MainZone = %+v, %v", z, ok)
	}
	if _, ok := (Facts{}).MainZone(); ok {
		t.Error("MainZone of no zones reported ok")
	}
}
