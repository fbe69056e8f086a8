package platform

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcStatusBytes reads one "N kB" field of /proc/PID/status (VmRSS,
// RssFile, VmHWM…) in bytes; pid 0 is this process.
func ProcStatusBytes(pid int, key string) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseStatusBytes(string(b), key)
}

// parseStatusBytes returns field key of a /proc/PID/status text, in bytes.
func parseStatusBytes(status, key string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status %s: %q is not N kB", key, v)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc status %s: %w", key, err)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("/proc status: no %s", key)
}
