package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/botd/botd/internal/emulator"
)

// TestE2ECertificateCredential: botd with BOTD_CLIENT_CERTIFICATE_FILE and
// no secret gets its Graph tokens with a signed client assertion, which the
// emulator checks against the certificate, and a call is established.
func TestE2ECertificateCredential(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "botd-e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	path := filepath.Join(t.TempDir(), "bot.pem")
	pemBytes := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	b := e2eStartExternal(t, emulator.Options{ClientCertificate: cert, TimeScale: 0.05},
		map[string]string{"BOTD_CLIENT_SECRET": "", "BOTD_CLIENT_CERTIFICATE_FILE": path})
	r := e2eRun{b: b}
	r.e2eEstablish(t, e2eCreateBody(t, "003_01"))
	var assertions int
	for _, req := range b.emu.Requests(emulator.RouteToken) {
		if strings.Contains(string(req.Body), "client_secret") {
			t.Errorf("a token request carried a client secret: %s", req.Body)
		}
		if strings.Contains(string(req.Body), "client_assertion_type=") {
			assertions++
		}
	}
	if assertions == 0 {
		t.Fatal("no token request carried a client assertion")
	}
	if strings.Contains(b.logs.String(), "PRIVATE KEY") {
		t.Fatal("key material in the log")
	}
}
