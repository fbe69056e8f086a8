package local

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// chunkReader hands out data in pieces whose sizes come from sizes (the
// fuzzer's second input), the way a socket delivers a client's writes, and
// ends with end (io.EOF, or a connection error).
type chunkReader struct {
	data, sizes []byte
	end         error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.end
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n = min(n, int(r.sizes[0])+1)
		r.sizes = r.sizes[1:]
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

var errReset = errors.New("connection reset")

// FuzzLineReader splits arbitrary byte streams, delivered in arbitrary
// pieces, into request lines the way a socket connection does. Every line
// the client ended with "\n" (and a last unterminated one at EOF) is exactly
// one request, byte for byte, or a too_large request holding the line's
// first max bytes; a read error drops only the unfinished line.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("{\"id\":\"1\",\"text\":\"hi\"}\nwhat time is it\n"), []byte{3, 200}, uint16(64), false)
	f.Fuzz(func(t *testing.T, stream, sizes []byte, max uint16, reset bool) {
		lim := int(max%512) + 1
		end := io.EOF
		if reset {
			end = errReset
		}
		// The smallest buffer bufio allows, so long lines cross many
		// ErrBufferFull fragments.
		lr := lineReader{r: bufio.NewReaderSize(&chunkReader{data: stream, sizes: sizes, end: end}, 16), max: lim}

		want := bytes.Split(stream, []byte("\n"))
		if last := want[len(want)-1]; len(last) == 0 || reset {
			// Nothing after the last "\n", or a line the connection lost.
			want = want[:len(want)-1]
		}
		var got int
		for calls := 0; ; calls++ {
			if calls > len(stream)+1 {
				t.Fatalf("lineReader did not finish %q", stream)
			}
			line, complete, tooLarge, err := lr.next()
			if complete {
				if got >= len(want) {
					t.Fatalf("stream %q (limit %d): extra line %q", stream, lim, line)
				}
				w := want[got]
				switch {
				case len(w) > lim && (!tooLarge || !bytes.Equal(line, w[:lim])):
					t.Fatalf("stream %q (limit %d): line %d = %q tooLarge %v, want the first %d bytes of %q, too large", stream, lim, got, line, tooLarge, lim, w)
				case len(w) <= lim && (tooLarge || !bytes.Equal(line, w)):
					t.Fatalf("stream %q (limit %d): line %d = %q tooLarge %v, want %q", stream, lim, got, line, tooLarge, w)
				}
				got++
			}
			if err != nil {
				if !errors.Is(err, end) {
					t.Fatalf("stream %q ended with %v, want %v", stream, err, end)
				}
				break
			}
			if !complete {
				t.Fatalf("stream %q: next returned neither a line nor an error", stream)
			}
		}
		if got != len(want) {
			t.Fatalf("stream %q (limit %d): %d lines, want %d", stream, lim, got, len(want))
		}
	})
}
