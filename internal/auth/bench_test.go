package auth

import (
	"context"
	"testing"
)

// BenchmarkVerifyCached is the common case: Graph reuses one token across
// many callbacks.
func BenchmarkVerifyCached(b *testing.B) {
	e := newEnv(b, nil)
	h := "Bearer " + sign(b, keyA(), kidA, e.claims())
	if _, err := e.v.Verify(context.Background(), h); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(context.Background(), h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyUncached is a full check each time: parse, RS256
// signature, claims (the cache is disabled).
func BenchmarkVerifyUncached(b *testing.B) {
	e := newEnv(b, func(cfg *VerifierConfig) { cfg.CacheSize = -1 })
	h := "Bearer " + sign(b, keyA(), kidA, e.claims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(context.Background(), h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCachedParallel shows the cache under concurrent callbacks.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	e := newEnv(b, nil)
	h := "Bearer " + sign(b, keyA(), kidA, e.claims())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.v.Verify(context.Background(), h); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRefuseForged is the cost of a forged token: a failed RSA check.
func BenchmarkRefuseForged(b *testing.B) {
	e := newEnv(b, nil)
	h := "Bearer " + sign(b, forgerKey(), kidA, e.claims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(context.Background(), h); err == nil {
			b.Fatal("forged token verified")
		}
	}
}
