package handlers

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/botd/botd/internal/problem"
)

// readBody reads a request body that the router's RequestSize middleware
// has bounded, turning an oversized one into a 413.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(mbe.Limit)
		}
		return nil, errorf(problem.Invalid, "read body: %v", err)
	}
	return body, nil
}

// bodyBuf is a callback body buffer with the reader that bounds it; both
// are pooled, so that reading a callback allocates neither.
type bodyBuf struct {
	bytes.Buffer
	lim io.LimitedReader
}

// bodyBufs are callback body buffers. The decoder keeps nothing of the
// body (its Batch shares no memory with it), so a callback's buffer is
// reused by the next one.
var bodyBufs = sync.Pool{New: func() any { return new(bodyBuf) }}

// maxPooledBody is the largest buffer put back: a rare huge body's memory
// is not held on to.
const maxPooledBody = 64 << 10

// readPooledBody reads a callback body of at most max bytes into a pooled
// buffer, sized from Content-Length when the client sent one; a longer
// body is a 413. The public router has no RequestSize middleware: this is
// the callback's bound (a forwarded callback's is in forward.go). Give the
// buffer back with releaseBody; its bytes must not be used after.
func readPooledBody(r *http.Request, max int64) (*bodyBuf, error) {
	if r.ContentLength > max {
		return nil, tooLarge(max)
	}
	buf := bodyBufs.Get().(*bodyBuf)
	buf.Reset()
	if n := r.ContentLength; n > 0 && n <= maxPooledBody {
		buf.Grow(int(n) + bytes.MinRead) // ReadFrom wants MinRead free to go on
	}
	buf.lim = io.LimitedReader{R: r.Body, N: max + 1}
	_, err := buf.ReadFrom(&buf.lim)
	buf.lim.R = nil // keep no reference to the request
	switch {
	case err != nil:
		releaseBody(buf)
		return nil, errorf(problem.Invalid, "read body: %v", err)
	case int64(buf.Len()) > max:
		releaseBody(buf)
		return nil, tooLarge(max)
	}
	return buf, nil
}

// tooLarge is the 413 for a body over max bytes.
func tooLarge(max int64) error { return errorf(problem.TooLarge, "body exceeds %d bytes", max) }

func releaseBody(buf *bodyBuf) {
	if buf.Cap() <= maxPooledBody {
		bodyBufs.Put(buf)
	}
}

// requirePost is postOnly as middleware.
func requirePost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if postOnly(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// postOnly answers 405 with Allow: POST to any other method, and reports
// whether the request may go on. Graph only ever posts notifications.
func postOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", http.MethodPost)
	writeProblem(w, r, errorf(problem.MethodNotAllow, "method %s not allowed: Graph posts notifications", r.Method))
	return false
}
