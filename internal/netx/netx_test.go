package netx

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.9.9.9": true, "::1": true,
		"": false, "0.0.0.0": false, "10.0.0.1": false, "localhost.evil.example": false, "::": false, "bot.contoso.com": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestStatusWriter(t *testing.T) {
	for _, c := range []struct {
		name       string
		h          func(w http.ResponseWriter)
		status     int
		code, seen int
	}{
		{"nothing written", func(w http.ResponseWriter) {}, 0, 200, 200},
		{"a body only", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, 200, 200, 200},
		{"a status", func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) }, 202, 202, 202},
		{"the first status", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound); w.WriteHeader(http.StatusOK) }, 404, 404, 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			sw := &StatusWriter{ResponseWriter: rec}
			c.h(sw)
			if sw.Status != c.status || sw.Code() != c.code || rec.Code != c.seen {
				t.Errorf("Status %d Code %d recorder %d, want %d %d %d", sw.Status, sw.Code(), rec.Code, c.status, c.code, c.seen)
			}
			if sw.Bytes != rec.Body.Len() {
				t.Errorf("Bytes %d, the body has %d", sw.Bytes, rec.Body.Len())
			}
			if sw.Unwrap() != rec {
				t.Error("Unwrap does not reach the writer")
			}
		})
	}
}
