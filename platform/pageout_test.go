package platform

import (
	"reflect"
	"testing"
)

func TestCodeMappings(t *testing.T) {
	maps := []byte(`00400000-00452000 r--p 00000000 08:02 173521 /usr/bin/hedge
00452000-00f00000 r-xp 00052000 08:02 173521 /usr/bin/hedge
00f00000-00f10000 rw-p 00b00000 08:02 173521 /usr/bin/hedge
00f10000-00f20000 rw-p 00000000 00:00 0
7f0000000000-7f0000100000 r--s 00000000 08:02 99 /var/lib/hedge/hedge.db
7f0000200000-7f0000300000 r--p 00000000 08:02 98 /var/lib/hedge/models/m.gguf
7f0000400000-7f0000500000 r-xp 00000000 08:02 97 /usr/lib/hedge/libonnxruntime.so.1
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0 [vdso]
`)
	want := [][2]uintptr{{0x400000, 0x452000}, {0x452000, 0xf00000}, {0xf00000, 0xf10000}, {0x7f0000400000, 0x7f0000500000}}
	if got := codeMappings(maps); !reflect.DeepEqual(got, want) {
		t.Errorf("codeMappings = %x, want %x: the binary's and the library's mappings, no data files", got, want)
	}
}

// The test binary's own code pages are resident after it started: most go.
func TestReleaseCodePages(t *testing.T) {
	before, after, err := ReleaseCodePages()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RssFile %d kB → %d kB", before>>10, after>>10)
	if after >= before {
		t.Errorf("RssFile %d kB → %d kB: nothing was released", before>>10, after>>10)
	}
}
