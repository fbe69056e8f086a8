package platform

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// madvPageout is MADV_PAGEOUT (Linux 5.4): reclaim the range's pages now.
const madvPageout = 21

// ReleaseCodePages asks the kernel to reclaim the pages of the process's
// executable and shared libraries that are resident: every file mapping of
// a file that is mapped executable somewhere (hedge itself, ONNX Runtime,
// llama.cpp's CPU variant, libc). Start-up touches much code that serving
// never runs again (training, loading, initialisers); afterwards only the
// pages a request runs come back, on first use, from the page cache or the
// disk. The contents do not change: a page that is shared, locked or
// written (copy-on-write) stays. It returns the bytes of file-backed memory
// resident (RssFile) before and after. Data files (the bbolt store, a GGUF
// model) are not touched: nothing maps them executable.
func ReleaseCodePages() (before, after int64, err error) {
	if before, err = ProcStatusBytes(0, "RssFile"); err != nil {
		return 0, 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return before, before, fmt.Errorf("release code pages: %w", err)
	}
	for _, r := range codeMappings(maps) {
		_, _, e := unix.Syscall(unix.SYS_MADVISE, r[0], r[1]-r[0], madvPageout)
		if e != 0 {
			return before, before, fmt.Errorf("release code pages: madvise(MADV_PAGEOUT): %w", e)
		}
	}
	after, err = ProcStatusBytes(0, "RssFile")
	return before, after, err
}

// codeMappings returns the address ranges of /proc/self/maps' lines whose
// file is mapped executable in at least one of them.
func codeMappings(maps []byte) [][2]uintptr {
	type line struct {
		lo, hi uintptr
		path   string
	}
	var lines []line
	code := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// address perms offset dev inode path
		if len(f) < 6 || f[4] == "0" || !strings.HasPrefix(f[5], "/") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || b <= a {
			continue
		}
		lines = append(lines, line{uintptr(a), uintptr(b), f[5]})
		if strings.Contains(f[1], "x") {
			code[f[5]] = true
		}
	}
	var out [][2]uintptr
	for _, l := range lines {
		if code[l.path] {
			out = append(out, [2]uintptr{l.lo, l.hi})
		}
	}
	return out
}
