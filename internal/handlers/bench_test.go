package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/auth"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/notify"
	"github.com/botd/botd/internal/testkit"
)

// BenchmarkCallback measures the public router's callback path (decode,
// apply to the store, count, answer 202) with inbound authentication off
// and on, in the same run. With auth on, one token is reused for every
// callback, as Graph does, so the RSA check runs once and then the cache
// answers. Bodies alternate each of 64 calls between established and hold,
// so every callback changes state.
func BenchmarkCallback(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	emu := emulator.New(emulator.Options{ClientID: "app-1", SigningKey: key})
	emu.Start()
	defer emu.Close()

	// Two payloads: a small call-state update whose state alternates,
	// and the compact 847-byte roster notification of invite example 1 (the
	// one issue 15's goals name), its call id replaced by one of 64.
	state := make([][]byte, 128)
	for i := range state {
		st := "established"
		if i >= 64 {
			st = "hold"
		}
		id := fmt.Sprintf("call-%02d", i%64)
		state[i] = []byte(fmt.Sprintf(`{"@odata.type":"#microsoft.graph.commsNotifications","value":[{"@odata.type":"#microsoft.graph.commsNotification","changeType":"updated","resource":"/app/calls/%s","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","state":%q,"id":%q}}]}`, id, id, st, id))
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, testkit.Seed(b, "001_04_notification.json")); err != nil {
		b.Fatal(err)
	}
	const exampleCall = "ab6233a5-20b7-4c5e-bea2-ce56c9776429"
	if !bytes.Contains(compact.Bytes(), []byte(exampleCall)) {
		b.Fatal("the roster example no longer holds its call id")
	}
	roster := make([][]byte, 64)
	for i := range roster {
		roster[i] = bytes.ReplaceAll(compact.Bytes(), []byte(exampleCall), []byte(fmt.Sprintf("ab6233a5-20b7-4c5e-bea2-%012d", i)))
	}
	payloads := []struct {
		name   string
		bodies [][]byte
	}{{"state", state}, {"roster", roster}}

	for _, p := range payloads {
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("payload=%s/auth=%v", p.name, map[bool]string{false: "off", true: "on"}[on]), func(b *testing.B) {
				benchCallback(b, emu, key, p.bodies, on)
			})
		}
	}
}

// benchCallback runs one sub-benchmark of BenchmarkCallback: bodies posted
// in turn, auth on or off.
func benchCallback(b *testing.B, emu *emulator.Server, key *rsa.PrivateKey, bodies [][]byte, on bool) {
	{
		{
			reg := prometheus.NewRegistry()
			store, err := callstate.New(callstate.DefaultConfig(), zerolog.Nop(), reg)
			if err != nil {
				b.Fatal(err)
			}
			d := Deps{
				Log: zerolog.Nop(), Decoder: notify.NewDecoder(notify.DefaultLimits()), Store: store,
				Metrics: NewMetrics(reg), CallbackPath: "/api/calls", MaxBody: 1 << 20,
				CallbackLimit: auth.Limit(256, time.Second, reg),
			}
			header := ""
			if on {
				v, err := auth.NewVerifier(verifierConfig(emu.OpenIDConfigURL()), zerolog.Nop(), reg)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if err := v.Start(ctx); err != nil {
					b.Fatal(err)
				}
				d.CallbackAuth = v.Middleware
				header = "Bearer " + benchToken(b, emu, key)
			}
			h := Public(d)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				u := &url.URL{Path: "/api/calls"}
				w := &discardWriter{h: http.Header{}}
				// The header and the body reader are the harness's, made
				// once: botd only reads them.
				hdr := http.Header{"Content-Type": {"application/json"}}
				if header != "" {
					hdr["Authorization"] = []string{header}
				}
				body := &benchBody{}
				for pb.Next() {
					// A request as net/http hands it over, without the cost
					// of parsing one (httptest.NewRequest's 4 KB reader),
					// so that the figures are the server's own.
					raw := bodies[i%len(bodies)]
					body.Reset(raw)
					req := &http.Request{Method: http.MethodPost, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
						Header: hdr, Body: body, ContentLength: int64(len(raw)),
						Host: "botd", RemoteAddr: "127.0.0.1:1", RequestURI: "/api/calls"}
					clear(w.h)
					w.code = 0
					h.ServeHTTP(w, req)
					if w.code != http.StatusAccepted {
						b.Fatalf("status %d", w.code)
					}
					i++
				}
			})
		}
	}
}

// benchToken signs one callback token with the emulator's key and kid.
func benchToken(b *testing.B, emu *emulator.Server, key *rsa.PrivateKey) string {
	res, err := http.Get(emu.JWKSURL())
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(res.Body).Decode(&jwks); err != nil || len(jwks.Keys) == 0 {
		b.Fatalf("jwks: %v", err)
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://api.botframework.com", "aud": "app-1", "tid": "tenant-1",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = jwks.Keys[0].Kid
	s, err := tok.SignedString(key)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// discardWriter is a ResponseWriter that keeps the status and drops the
// body, reused across a benchmark goroutine's requests.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return len(b), nil
}

// benchBody is a request body the benchmark reuses for each request.
type benchBody struct{ bytes.Reader }

func (*benchBody) Close() error { return nil }
