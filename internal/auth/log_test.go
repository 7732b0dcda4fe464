package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNoTokenInLogs sends every hostile and valid case through the
// middleware with the log captured, and looks for any part of the token,
// its kid or its tenant in what was logged and in the error returned.
func TestNoTokenInLogs(t *testing.T) {
	secrets := []string{kidA, kidB, kidC, testTenant, otherTenant, strings.ToUpper(testTenant), "26a18ebc-cdf7-4a6a-91cb-beb352805e81"}
	for _, tc := range authCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, allowTenant)
			hdr := tc.header(t, e)
			req := httptest.NewRequest(http.MethodPost, "/callback", nil)
			if hdr != nil {
				req.Header.Set("Authorization", *hdr)
			}
			e.v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(httptest.NewRecorder(), req)
			var errText string
			if hdr != nil {
				if _, err := e.v.Verify(req.Context(), *hdr); err != nil {
					errText = err.Error()
				}
			}

			logs := e.log.String()
			if tc.want != "" && !strings.Contains(logs, `"reason":"`+string(tc.want)+`"`) {
				t.Errorf("no failure line with the reason in %s", logs)
			}
			look := append([]string(nil), secrets...)
			if hdr != nil {
				look = append(look, *hdr)
				_, tok, _ := strings.Cut(*hdr, " ")
				for _, part := range strings.FieldsFunc(tok, func(r rune) bool { return r == '.' || r == ' ' }) {
					if len(part) >= 8 {
						look = append(look, part, part[:8], part[len(part)-8:])
					}
				}
			}
			for _, s := range look {
				if s == "" {
					continue
				}
				if strings.Contains(logs, s) {
					t.Errorf("log holds %q:\n%s", s, logs)
				}
				if strings.Contains(errText, s) {
					t.Errorf("error %q holds %q", errText, s)
				}
			}
		})
	}
}
