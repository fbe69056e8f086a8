package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ErrSecretFileMode is wrapped by the errors of secret files (http.token_file,
// cloud.api_key_file, mqtt.password_file, mqtt.tls.key) that group or others
// may read: hedge refuses a credential other users could have copied.
var ErrSecretFileMode = errors.New("group or others may read it")

// maxSecretFile bounds what is read of a secret file: a credential is a line.
const maxSecretFile = 64 << 10

// ReadSecretFile reads the secret file named by config key key: a regular
// file of mode 0600 or stricter, at most 64 KiB. It returns the whole
// content; each caller takes its line. The mode is checked on the open file,
// so the file read is the file checked. Errors name the key and the path,
// never the content. The file is opened non-blocking, so that a FIFO
// named by mistake (or malice) is refused as not a regular file rather
// than holding hedge's start until someone writes to it.
func ReadSecretFile(key, path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("read %s: %s is not a regular file", key, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("read %s: %s has mode %04o: %w; a secret file must be 0600 or stricter: run chmod 600 %s",
			key, path, perm, ErrSecretFileMode, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return string(data), nil
}
