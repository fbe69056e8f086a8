package mqtt

import (
	"os"
	"runtime"
)

func init() {
	debugStacks = func() {
		b := make([]byte, 1<<22)
		n := runtime.Stack(b, true)
		os.WriteFile("/tmp/mqtt-stacks.txt", b[:n], 0o644)
	}
}
