package auth

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/MicahParks/jwkset"
)

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"", "Bearer", "Bearer ", "Bearer abc", "bearer a.b.c", "Bearer  a=", "Bearer a b", "Basic abc",
		"Bearer ==", "Bearer a==b", "\tBearer x\t", "Bearer\tx", "Bearer a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, reason := parseBearer(h)
		if reason != "" {
			if tok != "" {
				t.Fatalf("token %q with reason %s", tok, reason)
			}
			if reason != ReasonMissing && reason != ReasonMalformed {
				t.Fatalf("reason %s", reason)
			}
			if reason == ReasonMissing && strings.Trim(h, " \t") != "" {
				t.Fatalf("%q called missing", h)
			}
			return
		}
		if !isB64Token(tok) || strings.ContainsAny(tok, " \t\r\n") || len(tok) > maxTokenLen {
			t.Fatalf("accepted token %q", tok)
		}
		if !strings.HasSuffix(strings.TrimRight(h, " \t"), tok) {
			t.Fatalf("token %q is not the end of %q", tok, h)
		}
		if again, r := parseBearer("Bearer " + tok); r != "" || again != tok {
			t.Fatalf("round trip of %q: %q %s", tok, again, r)
		}
	})
}

// fuzzEnv is shared by the fuzz workers' iterations: one fake Microsoft,
// one Verifier, one valid token.
var fuzzEnv struct {
	once  sync.Once
	e     *testEnv
	valid string
}

func FuzzVerify(f *testing.F) {
	fuzzEnv.once.Do(func() {
		fuzzEnv.e = newEnv(f, func(cfg *VerifierConfig) { cfg.UnknownKIDInterval = 1 << 62 })
		fuzzEnv.valid = sign(f, keyA(), kidA, fuzzEnv.e.claims())
	})
	e, valid := fuzzEnv.e, fuzzEnv.valid
	parts := strings.Split(valid, ".")
	for _, s := range []string{
		"Bearer " + valid,
		"Bearer " + valid + "x",
		"Bearer " + parts[0] + "." + parts[1] + ".",
		"Bearer " + parts[0] + ".." + parts[2],
		"Bearer " + valid[:len(valid)-1] + "B",
		"Bearer " + strings.ToUpper(valid),
		"Bearer e30.e30.",
		"Bearer eyJhbGciOiJub25lIn0.e30.",
		"Basic " + valid,
		"",
		"Bearer ....",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		_, err := e.v.Verify(context.Background(), h)
		if err == nil {
			tok, _ := parseBearer(h)
			if tok != valid {
				t.Fatalf("verified a token that is not the one signed: %q", h)
			}
		}
	})
}

// FuzzBuildKeySet feeds arbitrary JWKS documents to the key loader.
func FuzzBuildKeySet(f *testing.F) {
	good, _ := json.Marshal(map[string]any{"keys": []any{jwk(kidA, &keyA().PublicKey)}})
	f.Add(good)
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"x","n":"","e":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB","x5c":["AAAA"]}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var set jwkset.JWKSMarshal
		if json.Unmarshal(raw, &set) != nil {
			return
		}
		ks, skipped, err := buildKeySet(set)
		if err != nil {
			return
		}
		if len(ks.kids) == 0 || len(ks.kids)+skipped != len(set.Keys) {
			t.Fatalf("loaded %d, skipped %d of %d", len(ks.kids), skipped, len(set.Keys))
		}
	})
}
