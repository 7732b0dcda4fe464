package testkit

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); fmt.Fprint(&b, "x") }()
	}
	wg.Wait()
	if b.String() != "xxxxxxxx" {
		t.Fatalf("%q", b.String())
	}
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	Eventually(t, "three polls", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 {
		t.Fatalf("polled %d times", n.Load())
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewClock(start)
	c.Advance(90 * time.Second)
	if got, want := c.Now(), start.Add(90*time.Second); !got.Equal(want) {
		t.Fatalf("Now = %s, want %s", got, want)
	}
}

func TestSeed(t *testing.T) {
	if b := Seed(t, "INDEX.tsv"); len(b) == 0 {
		t.Fatal("the seeds' INDEX.tsv is empty")
	}
}

func TestCountPrefix(t *testing.T) {
	list := []string{"invite:c1", "invite:c2", "answer:c1", "invite"}
	if n := CountPrefix(list, "invite:"); n != 2 {
		t.Fatalf("CountPrefix = %d, want 2", n)
	}
}
