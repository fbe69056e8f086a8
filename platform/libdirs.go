package platform

import (
	"os"
	"path/filepath"
)

// LibraryFolders are the folders beside the running hedge binary where its
// shared libraries (ONNX Runtime, llama.cpp's CPU variants) are looked for,
// in order: the binary's own folder (a build's bin/, a README install) and
// ../lib/hedge from it (a package's /usr/bin/hedge and /usr/lib/hedge). The
// binary's symlinks are resolved first, so /usr/local/bin/hedge linking to
// /opt/hedge/hedge looks in /opt/hedge. Nil when the executable is unknown.
func LibraryFolders() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return libraryFoldersOf(exe)
}

func libraryFoldersOf(exe string) []string {
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	bin := filepath.Dir(exe)
	return []string{bin, filepath.Join(filepath.Dir(bin), "lib", "hedge")}
}
