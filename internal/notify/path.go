package notify

import (
	"fmt"
	"strings"

	"github.com/botd/botd/internal/model"
)

// Bounds on resource paths. Graph's ids are GUIDs (36 bytes) or, for
// content-sharing sessions, 64 hex digits.
const (
	maxIDLen   = 128
	maxPathLen = 1024
)

// ParseResourcePath parses a notification's resource or resourceUrl:
//
//	/communications/calls/{id}                          ResourceCall
//	/app/calls/{id}                                     ResourceCall (legacy)
//	.../calls/{id}/participants[/{participantId}]       ResourceParticipants
//	.../calls/{id}/operations/{operationId}             ResourceOperation
//	.../calls/{id}/contentsharingsessions[/{sessionId}] ResourceContentSharing
//	.../calls/{id}/{anything else well-formed}          ResourceOther
//
// Fixed segments match case-insensitively. It is strict, because the call
// id it returns selects which call's state a notification changes: the
// path may hold only the bytes [A-Za-z0-9._-] and '/', so no percent
// escapes, query, fragment, backslash or non-ASCII; no segment may be
// empty, "." or contain ".."; an id is at most 128 bytes and the path at
// most 1024. ':' and '@' are refused although they are legal in URL paths:
// no Graph communications id uses them, and ids go back into outbound
// Graph URLs. The CallID and SubID returned are substrings of p.
func ParseResourcePath(p string) (model.ResourcePath, error) {
	rp, _, err := parsePath(p, false)
	return rp, err
}

// parsePath is ParseResourcePath that, when lenient, also accepts a path
// without its leading '/' ("communications/calls/{id}", as some of
// Microsoft's own examples write it) and then reports noSlash. It accepts
// such a p exactly when ParseResourcePath accepts "/"+p, with the same
// result, except that the 1024-byte bound still counts p alone.
func parsePath(p string, lenient bool) (rp model.ResourcePath, noSlash bool, err error) {
	switch {
	case p == "":
		return rp, false, pathError(p, "empty path")
	case len(p) > maxPathLen:
		return rp, false, pathError(p, fmt.Sprintf("longer than %d bytes", maxPathLen))
	case p[0] != '/' && !lenient:
		return rp, false, pathError(p, "does not start with '/'")
	}
	rest := p
	if p[0] == '/' {
		rest = p[1:]
	} else {
		noSlash = true
	}
	rp, err = parseSegments(p, rest)
	if err != nil {
		return model.ResourcePath{}, false, err
	}
	return rp, noSlash, nil
}

// parseSegments parses rest, the path p after its leading '/' if any.
func parseSegments(p, rest string) (model.ResourcePath, error) {
	var rp model.ResourcePath
	for i := 0; i < len(p); i++ {
		if !idByte(p[i]) && p[i] != '/' {
			return rp, pathError(p, fmt.Sprintf("byte %q at offset %d is not allowed", p[i:i+1], i))
		}
	}
	var segs [8]string
	n := 0
	for {
		seg, tail, more := strings.Cut(rest, "/")
		if err := checkSegment(seg); err != nil {
			return rp, pathError(p, err.Error())
		}
		if n == len(segs) {
			return rp, pathError(p, fmt.Sprintf("more than %d segments", len(segs)))
		}
		segs[n] = seg
		n++
		if !more {
			break
		}
		rest = tail
	}
	s := segs[:n]
	switch {
	case len(s) >= 2 && strings.EqualFold(s[0], "communications") && strings.EqualFold(s[1], "calls"):
		s = s[2:]
	case len(s) >= 2 && strings.EqualFold(s[0], "app") && strings.EqualFold(s[1], "calls"):
		s = s[2:]
	default:
		return rp, pathError(p, "not under /communications/calls/ or /app/calls/")
	}
	if len(s) == 0 {
		return rp, pathError(p, "no call id")
	}
	rp.CallID, s = s[0], s[1:]
	switch {
	case len(s) == 0:
		rp.Kind = model.ResourceCall
	case len(s) <= 2 && strings.EqualFold(s[0], "participants"):
		rp.Kind = model.ResourceParticipants
	case len(s) == 2 && strings.EqualFold(s[0], "operations"):
		rp.Kind = model.ResourceOperation
	case len(s) <= 2 && strings.EqualFold(s[0], "contentSharingSessions"):
		rp.Kind = model.ResourceContentSharing
	default:
		rp.Kind = model.ResourceOther
		return rp, nil
	}
	if len(s) == 2 {
		rp.SubID = s[1]
	}
	return rp, nil
}

func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// checkSegment checks one path segment, whose bytes are already known to
// be idBytes.
func checkSegment(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("empty segment")
	case len(seg) > maxIDLen:
		return fmt.Errorf("segment of %d bytes exceeds %d", len(seg), maxIDLen)
	case seg == "." || strings.Contains(seg, ".."):
		return fmt.Errorf("dot segment %s", quoteTrunc([]byte(seg)))
	}
	return nil
}

// validID reports whether id, taken from a call resource rather than a
// path, would be accepted as a path's call id.
func validID(id string) bool {
	if checkSegment(id) != nil {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return false
		}
	}
	return true
}

func pathError(p, why string) error {
	return fmt.Errorf("invalid resource path %s: %s", quoteTrunc([]byte(p)), why)
}
