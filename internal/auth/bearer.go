package auth

import "strings"

// maxTokenLen bounds a bearer token before it is hashed or parsed. Graph's
// callback tokens are about 1 KiB; net/http's header limit is the outer
// bound, this one keeps a hostile header from costing more than it must.
const maxTokenLen = 16 << 10

// parseBearer returns the token of an RFC 6750 "Bearer" credential. The
// scheme is matched without regard to case (RFC 9110 section 11.1) and the
// token must be a b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+"
// / "/" ) *"=". Anything else is malformed, so no other scheme, no second
// token and no whitespace inside the token gets through.
func parseBearer(h string) (string, Reason) {
	h = strings.Trim(h, " \t")
	if h == "" {
		return "", ReasonMissing
	}
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ReasonMalformed
	}
	tok := strings.TrimLeft(rest, " ")
	if !isB64Token(tok) {
		return "", ReasonMalformed
	}
	return tok, ""
}

func isB64Token(s string) bool {
	if s == "" || len(s) > maxTokenLen {
		return false
	}
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
