package handlers

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/botd/botd/internal/graph"
)

// TestExamples: every body in examples/ is one the admin API takes as is:
// each create-call or join body creates a call, and each invite body
// passes the Graph client's rules.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*.json"))
	if len(files) < 15+12 {
		t.Fatalf("examples/ holds %d bodies, want one per seed scenario (15) and per media or participant action (12)", len(files))
	}
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	for _, f := range files {
		name := filepath.Base(f)
		if !strings.HasPrefix(name, "create-") && !strings.HasPrefix(name, "join-meeting-") && !strings.HasPrefix(name, "invite-") {
			continue // a media or participant action: cmd/botd's TestE2EMediaExamples
		}
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(name, "invite-") {
				var req graph.InviteRequest
				dec := json.NewDecoder(bytes.NewReader(body))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&req); err != nil {
					t.Fatal(err)
				}
				req.ClientContext = "example"
				if err := graph.ValidateInvite(&req); err != nil {
					t.Fatal(err)
				}
				return
			}
			rp := r.adminDo(http.MethodPost, "/v1/calls", body)
			if rp.status != http.StatusCreated {
				t.Fatalf("POST /v1/calls = %d: %s", rp.status, rp.body)
			}
		})
	}
}
