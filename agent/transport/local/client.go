package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/hedge-edge/hedge/agent"
)

// ErrNotRunning means no hedge listens at the socket path: the file is
// missing, or it is left over and nobody accepts on it. The query was not
// sent; starting hedge (or naming the right socket) fixes it.
var ErrNotRunning = errors.New("hedge is not running")

// ErrNoReply means the connection ended before the reply arrived: hedge
// stopped or crashed mid-request. The query may or may not have been
// processed.
var ErrNoReply = errors.New("hedge closed the connection without a reply")

// maxReplyBytes bounds one reply line the client reads, so a broken server
// cannot make it allocate without end.
const maxReplyBytes = 64 << 20

// Ask sends q to the hedge listening at path and returns its reply. An error
// reply (no_tier, bad_request, …) is returned as an Answer with Error set
// and a nil error; the error return is for failures to get a reply at all
// (ErrNotRunning, ErrNoReply, ctx ending, permission denied). When onChunk
// is not nil the answer is streamed: q.Stream is set and onChunk receives
// each chunk, in order, before Ask returns the final reply.
func Ask(ctx context.Context, path string, q agent.Query, onChunk func(agent.Chunk)) (agent.Answer, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return agent.Answer{}, dialError(path, err)
	}
	defer nc.Close()
	// Ending ctx unblocks the read or write in progress.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	q.Stream = onChunk != nil
	req, err := json.Marshal(q)
	if err != nil {
		return agent.Answer{}, fmt.Errorf("encode query: %w", err)
	}
	// A failed send is not the end: a hedge at its connection limit writes
	// a busy reply and hangs up, possibly before our query got through.
	_, sendErr := nc.Write(append(req, '\n'))
	r := bufio.NewReader(nc)
	for {
		line, err := readReply(r)
		if err != nil {
			if sendErr != nil {
				return agent.Answer{}, ioError(ctx, "send query", sendErr)
			}
			return agent.Answer{}, ioError(ctx, "read reply", err)
		}
		// A line with "delta" is a chunk, any other line the reply.
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(line, &probe); err != nil {
			return agent.Answer{}, fmt.Errorf("read reply: hedge sent a line that is not a JSON object: %w", err)
		}
		if _, ok := probe["delta"]; ok {
			var c agent.Chunk
			if err := json.Unmarshal(line, &c); err != nil {
				return agent.Answer{}, fmt.Errorf("read reply: bad chunk: %w", err)
			}
			if onChunk != nil {
				onChunk(c)
			}
			continue
		}
		var a agent.Answer
		if err := json.Unmarshal(line, &a); err != nil {
			return agent.Answer{}, fmt.Errorf("read reply: bad reply: %w", err)
		}
		return a, nil
	}
}

func readReply(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxReplyBytes {
			return nil, fmt.Errorf("reply line is longer than %d bytes", maxReplyBytes)
		}
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		}
		return nil, err
	}
}

func dialError(path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("connect to %s: no such socket: %w", path, ErrNotRunning)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connect to %s: connection refused, the socket file is left over: %w", path, ErrNotRunning)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("connect to %s: permission denied (the socket is 0660: run as its owner or a member of its group): %w", path, err)
	}
	return fmt.Errorf("connect to %s: %w", path, err)
}

func ioError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%s: %w", what, ErrNoReply)
	}
	return fmt.Errorf("%s: %w", what, err)
}
