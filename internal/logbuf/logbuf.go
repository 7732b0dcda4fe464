// Package logbuf gathers log lines and writes them out in batches, so that
// a busy botd does not make one write system call per line: under load the
// access log alone was one write per callback, as many as the responses.
//
// A line at warn or above is written at once, with every line before it,
// so a problem is never held back; the rest wait at most the interval, or
// until the buffer is full. Close writes what is left. What a process that
// is killed outright loses is at most the interval's lines at info and
// below.
package logbuf

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Writer is an io.Writer and a zerolog.LevelWriter. Each Write is taken
// as one whole line (as zerolog writes them): lines are never split or
// interleaved, and come out in the order they were written.
type Writer struct {
	mu       sync.Mutex
	out      io.Writer
	buf      []byte
	limit    int
	interval time.Duration
	timer    *time.Timer
	armed    bool // the timer will flush
	closed   bool

	failures atomic.Uint64 // writes to out that failed
	dropped  atomic.Uint64 // lines those writes lost
}

// Failures is how many writes to the destination have failed.
func (w *Writer) Failures() uint64 { return w.failures.Load() }

// Dropped is how many lines the failed writes lost.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// New returns a Writer to out that holds at most limit bytes, and holds a
// line at most interval. A zero interval writes every line at once.
func New(out io.Writer, interval time.Duration, limit int) *Writer {
	w := &Writer{out: out, limit: limit, interval: interval, buf: make([]byte, 0, limit)}
	w.timer = time.AfterFunc(time.Hour, w.tick)
	w.timer.Stop()
	return w
}

// Write holds p, a line, until the interval passes or the buffer fills.
func (w *Writer) Write(p []byte) (int, error) { return w.write(p, false) }

// WriteLevel holds p like Write, and writes it at once, with the lines
// before it, when its level is warn or above.
func (w *Writer) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	return w.write(p, l >= zerolog.WarnLevel && l < zerolog.NoLevel)
}

func (w *Writer) write(p []byte, now bool) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.interval <= 0 || len(p) > w.limit {
		// Written alone, after what is held, so the order is kept.
		if err := w.flushLocked(); err != nil {
			w.lost(p)
			return 0, err
		}
		return w.writeOut(p)
	}
	if len(w.buf)+len(p) > w.limit {
		if err := w.flushLocked(); err != nil {
			w.lost(p)
			return 0, err
		}
	}
	w.buf = append(w.buf, p...)
	if now {
		return len(p), w.flushLocked()
	}
	if !w.armed {
		w.armed = true
		w.timer.Reset(w.interval)
	}
	return len(p), nil
}

// flushLocked writes what is held. A write that fails drops what it held:
// the destination is broken, and holding more would only grow.
func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.writeOut(w.buf)
	w.buf = w.buf[:0]
	return err
}

// writeOut writes b to the destination, counting a failure and its lines.
func (w *Writer) writeOut(b []byte) (int, error) {
	n, err := w.out.Write(b)
	if err != nil {
		w.failures.Add(1)
		w.lost(b)
	}
	return n, err
}

// lost counts the lines of b as dropped.
func (w *Writer) lost(b []byte) {
	w.dropped.Add(uint64(max(1, bytes.Count(b, []byte{'\n'}))))
}

func (w *Writer) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	_ = w.flushLocked() // no one to tell; the next write meets the same error
}

// Close writes what is held; lines written after it go out at once.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.timer.Stop()
	w.armed = false
	return w.flushLocked()
}
