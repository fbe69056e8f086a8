package store

import (
	"encoding/binary"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// errCorrupt marks a stored value this package cannot decode; it surfaces
// wrapped in the failing method's error.
var errCorrupt = errors.New("corrupt value")

// nanos encodes t for storage: Unix nanoseconds, 0 for the zero time
// ("never"). Times before 1970 are not used by the store.
func nanos(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	n := t.UnixNano()
	if n <= 0 {
		return 1
	}
	return uint64(n)
}

func fromNanos(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n))
}

// live reports whether a stored expiry (nanos) is still in the future of
// now; 0 never expires.
func live(exp uint64, now time.Time) bool {
	return exp == 0 || exp > nanos(now)
}

// timeKey builds an index key: big-endian times, then the rest.
func timeKey(rest []byte, times ...uint64) []byte {
	k := make([]byte, 0, 8*len(times)+len(rest))
	for _, t := range times {
		k = binary.BigEndian.AppendUint64(k, t)
	}
	return append(k, rest...)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decoder reads the fields appendBytes and the fixed-width appends wrote;
// the first short read makes err sticky.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) u8() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errCorrupt
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u32() uint32 {
	if d.err != nil || len(d.b) < 4 {
		d.err = errCorrupt
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errCorrupt
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// bytes returns a copy: bbolt's slices are only valid inside the
// transaction.
func (d *decoder) bytes() []byte {
	if d.err != nil {
		return nil
	}
	n, w := binary.Uvarint(d.b)
	if w <= 0 || uint64(len(d.b)-w) < n {
		d.err = errCorrupt
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b[w:w+int(n)])
	d.b = d.b[w+int(n):]
	return v
}

// metaInt reads one of the meta counts (entries, bytes).
func metaInt(tx *bolt.Tx, k []byte) int64 {
	v := tx.Bucket(bMeta).Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func metaAdd(tx *bolt.Tx, k []byte, delta int64) error {
	if delta == 0 {
		return nil
	}
	n := metaInt(tx, k) + delta
	if n < 0 {
		n = 0
	}
	return tx.Bucket(bMeta).Put(k, binary.BigEndian.AppendUint64(nil, uint64(n)))
}
