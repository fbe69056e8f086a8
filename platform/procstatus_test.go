package platform

import "testing"

func TestParseStatusBytes(t *testing.T) {
	status := "Name:\thedge\nVmHWM:\t   62656 kB\nVmRSS:\t   61204 kB\nThreads:\t12\n"
	if n, err := parseStatusBytes(status, "VmRSS"); err != nil || n != 61204*1024 {
		t.Errorf("VmRSS: %d, %v", n, err)
	}
	if n, err := parseStatusBytes(status, "VmHWM"); err != nil || n != 62656*1024 {
		t.Errorf("VmHWM: %d, %v", n, err)
	}
	for _, key := range []string{"VmSwap", "Threads", "Name"} {
		if _, err := parseStatusBytes(status, key); err == nil {
			t.Errorf("%s: no error", key)
		}
	}
}
