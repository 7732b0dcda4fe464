package graph

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/netx"
)

func FuzzParseErrorBody(f *testing.F) {
	f.Add(429, `{"error":{"code":"TooManyRequests","message":"slow down","innerError":{"request-id":"r","client-request-id":"c","date":"2026-01-01T00:00:00"}}}`, "5")
	f.Add(400, `{"error":{"code":"BadRequest","message":"bad","innererror":{"request-id":"r"}}}`, "")
	f.Add(502, "<html><body>Bad Gateway</body></html>\n<p>x</p>", "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(500, `{"error":null}`, "")
	f.Add(404, `{"error":{"innerError":{"innerError":{"code":"quota"}}}}`, "-1")
	f.Add(503, "\xff\xfe", "99999999999999999999999")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("request-id", "hdr-r")
		e := parseErrorBody(status, h, []byte(body), now)
		if e == nil || e.StatusCode != status {
			t.Fatalf("parseErrorBody lost the status: %+v", e)
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("RetryAfter %s out of range", e.RetryAfter)
		}
		if e.RequestID == "" {
			t.Fatal("request-id from the header lost")
		}
		var env graphErrorBody
		if json.Unmarshal([]byte(body), &env) != nil || env.Error == nil {
			// Not Graph's JSON: the kept text is one short line of valid UTF-8.
			if !utf8.ValidString(e.Message) || len(e.Message) > maxMessage+len("…") || strings.ContainsAny(e.Message, "\r\n") {
				t.Fatalf("message %q from a non-Graph body", e.Message)
			}
		}
		if !strings.Contains(e.Error(), strconv.Itoa(status)) {
			t.Fatalf("Error() %q lacks the status", e.Error())
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{"0", "1", "120", " 7 ", "-1", "+5", "1.5", "", "abc",
		"Wed, 21 Oct 2015 07:28:00 GMT", now.Add(time.Hour).Format(http.TimeFormat), "Thursday, 01-Jan-26 00:00:09 GMT",
		"999999999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if !ok {
			if d != 0 {
				t.Fatalf("not ok but d=%s", d)
			}
			return
		}
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %s out of [0, %s]", v, d, maxRetryAfter)
		}
		if tv := strings.TrimSpace(v); allDigits(tv) && len(tv) < 5 {
			if want := mustAtoi(tv); d != time.Duration(want)*time.Second {
				t.Fatalf("parseRetryAfter(%q) = %s", v, d)
			}
		}
	})
}

func mustAtoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func FuzzCheckE164(f *testing.F) {
	for _, s := range []string{"+12345678901", "+1", "+0123", "12345", "+123456789012345", "+1234567890123456", "+１２", "+12\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkE164("f", s) != nil {
			return
		}
		if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
			t.Fatalf("accepted %q", s)
		}
		for _, c := range s[1:] {
			if c < '0' || c > '9' {
				t.Fatalf("accepted %q with non-digit %q", s, c)
			}
		}
	})
}

func FuzzCheckCallbackURI(f *testing.F) {
	for _, s := range []string{"https://bot.contoso.com/cb", "http://localhost/cb", "http://127.0.0.1:80/cb", "http://[::1]/",
		"http://bot.contoso.com/cb", "http://localhost.evil/cb", "javascript:alert(1)", "https:opaque", "//host/path", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkCallbackURI("f", s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			t.Fatalf("accepted %q, not an absolute URL", s)
		}
		switch strings.ToLower(u.Scheme) {
		case "https":
		case "http":
			if !netx.IsLoopbackHost(u.Hostname()) {
				t.Fatalf("accepted plain http to %q", u.Hostname())
			}
		default:
			t.Fatalf("accepted scheme %q", u.Scheme)
		}
	})
}

func FuzzCheckID(f *testing.F) {
	for _, s := range []string{"2e1a0b00-2db4-4022-9570-243709c565ab", "", "a/b", "..", ".", "a b?c#d%", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if checkID("id", id) != nil {
			return
		}
		p := callPath(id)
		if strings.Count(p, "/") != 3 {
			t.Fatalf("id %q escaped to %q changes the path", id, p)
		}
		u, err := url.Parse("https://graph.microsoft.com/v1.0" + p)
		if err != nil {
			t.Fatalf("id %q makes an invalid URL: %v", id, err)
		}
		if u.RawQuery != "" || u.Fragment != "" || u.Path != "/v1.0/communications/calls/"+id {
			t.Fatalf("id %q round-trips to path %q query %q fragment %q", id, u.Path, u.RawQuery, u.Fragment)
		}
	})
}

func FuzzCallIDFromLocation(f *testing.F) {
	for _, s := range []string{"https://graph.microsoft.com/v1.0/communications/calls/2e1a0b00-2db4-4022-9570-243709c565ab",
		"https://graph.microsoft.com/v1.0/communications/calls/", "/communications/calls/a%2Fb", "::", "https://x/communications/calls/a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, loc string) {
		id := callIDFromLocation(loc)
		if id != "" && checkID("id", id) != nil {
			t.Fatalf("callIDFromLocation(%q) = %q, an id the client would refuse", loc, id)
		}
	})
}

func FuzzNormaliseStatus(f *testing.F) {
	for _, s := range []string{"Running", "running", "NotStarted", "completed", "FAILED", "", "weird"} {
		f.Add(s)
	}
	known := map[model.OperationStatus]bool{model.OpNotStarted: true, model.OpRunning: true, model.OpCompleted: true, model.OpFailed: true}
	f.Fuzz(func(t *testing.T, s string) {
		got := model.OperationStatus(s).Normalize()
		if !known[got] && got != model.OperationStatus(s) {
			t.Fatalf("%q.Normalize() = %q: unknown values must be kept", s, got)
		}
		if known[got] && !strings.EqualFold(string(got), s) {
			t.Fatalf("%q.Normalize() = %q", s, got)
		}
	})
}
