// Package testkit holds the helpers botd's tests share: a log sink safe for
// concurrent writers and a wait that polls a condition without asserting
// on time. Only tests import it.
package testkit

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Buffer is an io.Writer safe for concurrent writers, for capturing logs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Bound is how long Eventually waits before failing: generous, so a slow
// machine never fails a test that is right; tests never assert on time.
const Bound = 20 * time.Second

// Eventually polls cond until it holds, and fails the test, naming what,
// only after Bound.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
