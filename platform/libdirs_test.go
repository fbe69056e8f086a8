package platform

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// A package's /usr/bin/hedge finds /usr/lib/hedge; a symlink to a README
// install in /opt/hedge looks beside the real binary, not the link.
func TestLibraryFolders(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib/hedge", "opt/hedge", "usr/local/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"usr/bin/hedge", "opt/hedge/hedge"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(root, "usr/local/bin/hedge")
	if err := os.Symlink(filepath.Join(root, "opt/hedge/hedge"), link); err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ exe, want0, want1 string }{
		{filepath.Join(root, "usr/bin/hedge"), "usr/bin", "usr/lib/hedge"},
		{link, "opt/hedge", "opt/lib/hedge"},
	} {
		got := libraryFoldersOf(c.exe)
		want := []string{filepath.Join(real, c.want0), filepath.Join(real, c.want1)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("libraryFoldersOf(%s) = %v, want %v", c.exe, got, want)
		}
	}
	if got := LibraryFolders(); len(got) != 2 {
		t.Errorf("LibraryFolders() = %v, want the test binary's folder and ../lib/hedge", got)
	}
}
