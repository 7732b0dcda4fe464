package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

type graphish struct{}

func (graphish) Error() string { return "graph said no" }
func (graphish) Problem() Problem {
	return Problem{Code: Upstream, Detail: "Graph refused the request", GraphStatus: 400}
}

var errSentinel error = &Error{Code: Unavailable, Message: "full"}

func TestFor(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   Code
		detail string
	}{
		{"not coded: shows nothing", errors.New("secret internals"), 500, Internal, "internal error"},
		{"coded type", fmt.Errorf("create call: %w", graphish{}), 502, Upstream, "Graph refused the request"},
		{"wrapped sentinel: the whole text", fmt.Errorf("track: %w", errSentinel), 503, Unavailable, "track: full"},
		{"outermost wins", &Error{Code: Invalid, Message: "bad body", Err: graphish{}}, 400, Invalid, "bad body: graph said no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := For(tc.err)
			if p.Status != tc.status || p.Code != tc.code || p.Detail != tc.detail || p.Title != http.StatusText(tc.status) || p.Type != "about:blank" {
				t.Fatalf("%+v", p)
			}
		})
	}
	if !errors.Is(fmt.Errorf("x: %w", errSentinel), errSentinel) {
		t.Fatal("sentinels must match with errors.Is")
	}
}

func TestWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, httptest.NewRequest(http.MethodGet, "/v1/calls/x", nil), &Error{Code: NotFound, Message: `call "x" is not tracked`, Rule: "r", Field: "f"})
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 404 || rec.Header().Get("Content-Type") != "application/problem+json" || p.Instance != "/v1/calls/x" || p.Rule != "r" || p.Field != "f" {
		t.Fatalf("%d %s %+v", rec.Code, rec.Header(), p)
	}
}

func TestCodesHaveDistinctStatuses(t *testing.T) {
	seen := map[int]Code{}
	for _, c := range Codes() {
		if other, dup := seen[c.Status()]; dup {
			t.Fatalf("%s and %s share %d", c, other, c.Status())
		}
		seen[c.Status()] = c
	}
	if len(seen) != 12 || Code("nope").Status() != 500 {
		t.Fatalf("%v", seen)
	}
}

func TestClosest(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"BOTD_LISTNE", "BOTD_LISTEN", 2}, {"flaw", "lawn", 2}} {
		if d := editDistance(tc.a, tc.b); d != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
	if got, ok := Closest("anwser", []string{"answer", "reject"}, 3); !ok || got != "answer" {
		t.Errorf("Closest = %q %v", got, ok)
	}
	if got, ok := Closest("zzzzzz", []string{"answer", "reject"}, 3); ok {
		t.Errorf("Closest of a far name = %q", got)
	}
}
