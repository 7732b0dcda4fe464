package logbuf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// sink records each write it is given, and signals it.
type sink struct {
	mu     sync.Mutex
	writes []string
	fail   error
	wrote  chan struct{}
}

func newSink() *sink { return &sink{wrote: make(chan struct{}, 1000)} }

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	s.writes = append(s.writes, string(p))
	select {
	case s.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

// await waits up to 10 s for a write, failing with why.
func (s *sink) await(t *testing.T, why string) {
	t.Helper()
	select {
	case <-s.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal(why)
	}
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

func TestLinesAreHeldAndWrittenTogether(t *testing.T) {
	s := newSink()
	w := New(s, time.Hour, 1<<10)
	log := zerolog.New(w)
	log.Info().Msg("one")
	log.Debug().Msg("two")
	if got := s.got(); len(got) != 0 {
		t.Fatalf("info lines were written at once: %q", got)
	}
	log.Warn().Msg("three")
	got := s.got()
	if len(got) != 1 || got[0] != "{\"level\":\"info\",\"message\":\"one\"}\n{\"level\":\"debug\",\"message\":\"two\"}\n{\"level\":\"warn\",\"message\":\"three\"}\n" {
		t.Fatalf("a warn line: writes %q, want the three lines in one write, in order", got)
	}
	log.Error().Msg("four")
	if got := s.got(); len(got) != 2 {
		t.Fatalf("an error line was not written at once: %q", got)
	}
	log.Info().Msg("five")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.got(); len(got) != 3 || !strings.Contains(got[2], "five") {
		t.Fatalf("Close did not write what was held: %q", got)
	}
	log.Info().Msg("six")
	if got := s.got(); len(got) != 4 || !strings.Contains(got[3], "six") {
		t.Fatalf("a line after Close was held: %q", got)
	}
}

func TestTheIntervalWritesWhatIsHeld(t *testing.T) {
	s := newSink()
	w := New(s, 5*time.Millisecond, 1<<10)
	defer w.Close()
	for i := range 3 {
		if _, err := w.Write([]byte(fmt.Sprintf("line %d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	s.await(t, "nothing was written 10 s after the lines, with an interval of 5 ms")
	if got := s.got(); len(got) != 1 || got[0] != "line 0\nline 1\nline 2\n" {
		t.Fatalf("the interval wrote %q, want the three lines in one write", got)
	}
	// And again: the timer is armed by the first line after a write.
	_, _ = w.Write([]byte("line 3\n"))
	s.await(t, "a second batch was not written")
	if got := s.got(); len(got) != 2 || got[1] != "line 3\n" {
		t.Fatalf("second batch: %q", got)
	}
}

func TestAFullBufferIsWrittenAndALongLineAlone(t *testing.T) {
	s := newSink()
	w := New(s, time.Hour, 16)
	_, _ = w.Write([]byte("aaaaaaaaa\n")) // 10
	_, _ = w.Write([]byte("bbbbbbbbb\n")) // 20 > 16: the first is written first
	if got := s.got(); len(got) != 1 || got[0] != "aaaaaaaaa\n" {
		t.Fatalf("full buffer: %q", got)
	}
	long := strings.Repeat("c", 40) + "\n"
	_, _ = w.Write([]byte(long))
	if got := s.got(); len(got) != 3 || got[1] != "bbbbbbbbb\n" || got[2] != long {
		t.Fatalf("a line longer than the buffer: %q, want what was held, then the line alone", got)
	}
}

func TestAZeroIntervalWritesEachLine(t *testing.T) {
	s := newSink()
	w := New(s, 0, 1<<10)
	_, _ = w.Write([]byte("x\n"))
	_, _ = w.Write([]byte("y\n"))
	if got := s.got(); len(got) != 2 {
		t.Fatalf("interval 0: %q", got)
	}
}

func TestAFailedWriteIsReportedAndDropsWhatItHeld(t *testing.T) {
	s := newSink()
	w := New(s, time.Hour, 1<<10)
	_, _ = w.Write([]byte("held\n"))
	s.mu.Lock()
	s.fail = errors.New("broken pipe")
	s.mu.Unlock()
	if _, err := w.WriteLevel(zerolog.ErrorLevel, []byte("error\n")); err == nil {
		t.Fatal("a failed write was not reported")
	}
	s.mu.Lock()
	s.fail = nil
	s.mu.Unlock()
	_ = w.Close()
	if got := s.got(); len(got) != 0 {
		t.Fatalf("lines of the failed write were kept and written later: %q", got)
	}
	if w.Failures() != 1 || w.Dropped() != 2 {
		t.Fatalf("failures %d, dropped lines %d; want 1 and 2 (the held line and the error line)", w.Failures(), w.Dropped())
	}
	// Unbuffered, a failure counts too.
	s.mu.Lock()
	s.fail = errors.New("broken pipe")
	s.mu.Unlock()
	u := New(s, 0, 1<<10)
	if _, err := u.Write([]byte("x\n")); err == nil || u.Failures() != 1 || u.Dropped() != 1 {
		t.Fatalf("unbuffered: err %v, failures %d, dropped %d", err, u.Failures(), u.Dropped())
	}
}

func TestConcurrentLinesStayWhole(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	w := New(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) }), time.Millisecond, 256)
	log := zerolog.New(w)
	var wg sync.WaitGroup
	const goroutines, lines = 8, 500
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				log.Info().Int("g", g).Int("i", i).Msg("a line of some length, to fill the buffer now and then")
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != goroutines*lines {
		t.Fatalf("%d lines, want %d", len(got), goroutines*lines)
	}
	next := make([]int, goroutines)
	for _, l := range got {
		var g, i int
		if _, err := fmt.Sscanf(l, `{"level":"info","g":%d,"i":%d,`, &g, &i); err != nil || !strings.HasSuffix(l, `"}`) {
			t.Fatalf("a line was split or mixed: %q", l)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d's line %d came where %d was due", g, i, next[g])
		}
		next[g]++
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// BenchmarkLine writes access-log-sized lines to /dev/null, a file as
// stdout is: each write the file gets is a system call. writes/op is the
// writes per line.
func BenchmarkLine(b *testing.B) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	for _, interval := range []time.Duration{0, 100 * time.Millisecond} {
		b.Run(fmt.Sprintf("interval=%v", interval), func(b *testing.B) {
			var n int
			w := New(writerFunc(func(p []byte) (int, error) { n++; return null.Write(p) }), interval, 64<<10)
			line := []byte(strings.Repeat("x", 300) + "\n")
			b.ReportAllocs()
			for b.Loop() {
				_, _ = w.Write(line)
			}
			_ = w.Close()
			b.ReportMetric(float64(n)/float64(b.N), "writes/op")
		})
	}
}
