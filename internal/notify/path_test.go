package notify

import (
	"strings"
	"testing"

	"github.com/botd/botd/internal/model"
)

func TestParseResourcePath(t *testing.T) {
	const id = "2e1a0b00-2db4-4022-9570-243709c565ab"
	tests := []struct {
		path string
		want model.ResourcePath
	}{
		{"/communications/calls/" + id, model.ResourcePath{CallID: id, Kind: model.ResourceCall}},
		{"/app/calls/" + id, model.ResourcePath{CallID: id, Kind: model.ResourceCall}},
		{"/Communications/Calls/" + id, model.ResourcePath{CallID: id, Kind: model.ResourceCall}},
		{"/communications/calls/" + id + "/participants", model.ResourcePath{CallID: id, Kind: model.ResourceParticipants}},
		{"/app/calls/" + id + "/participants/p-1", model.ResourcePath{CallID: id, Kind: model.ResourceParticipants, SubID: "p-1"}},
		{"/communications/calls/" + id + "/operations/op_1", model.ResourcePath{CallID: id, Kind: model.ResourceOperation, SubID: "op_1"}},
		{"/communications/calls/" + id + "/operations/participants", model.ResourcePath{CallID: id, Kind: model.ResourceOperation, SubID: "participants"}},
		{"/communications/calls/" + id + "/contentsharingsessions", model.ResourcePath{CallID: id, Kind: model.ResourceContentSharing}},
		{"/communications/calls/" + id + "/contentSharingSessions/F7D9EF30", model.ResourcePath{CallID: id, Kind: model.ResourceContentSharing, SubID: "F7D9EF30"}},
		{"/communications/calls/" + id + "/audioRoutingGroups/g1", model.ResourcePath{CallID: id, Kind: model.ResourceOther}},
		{"/communications/calls/" + id + "/operations", model.ResourcePath{CallID: id, Kind: model.ResourceOther}},
		{"/communications/calls/" + id + "/participants/p/mute", model.ResourcePath{CallID: id, Kind: model.ResourceOther}},
		{"/communications/calls/a.b", model.ResourcePath{CallID: "a.b", Kind: model.ResourceCall}},
		{"/communications/calls/" + strings.Repeat("a", 128), model.ResourcePath{CallID: strings.Repeat("a", 128), Kind: model.ResourceCall}},
	}
	for _, tt := range tests {
		got, err := ParseResourcePath(tt.path)
		if err != nil || got != tt.want {
			t.Errorf("ParseResourcePath(%q) = %+v, %v; want %+v", tt.path, got, err, tt.want)
		}
	}
}

func TestParseResourcePathRejects(t *testing.T) {
	tests := []struct {
		path string
		why  string
	}{
		{"", "empty path"},
		{"communications/calls/x", "does not start with '/'"},
		{"/communications/calls", "no call id"},
		{"/communications/calls/", "empty segment"},
		{"/communications/calls/x/", "empty segment"},
		{"/communications//calls/x", "empty segment"},
		{"/communications/calls//x", "empty segment"},
		{"/communications/calls/..", "dot segment"},
		{"/communications/calls/.", "dot segment"},
		{"/communications/calls/x/../y", "dot segment"},
		{"/communications/calls/x/participants/..", "dot segment"},
		{"/communications/calls/a..b", "dot segment"},
		{"/communications/calls/x/./participants", "dot segment"},
		{"/communications/calls/%2e%2e", `"%"`},
		{"/communications/calls/x%2Fy", `"%"`},
		{"/communications/calls/x?y=1", `"?"`},
		{"/communications/calls/x#f", `"#"`},
		{"/communications/calls/x\\..\\y", `"\\"`},
		{"/communications/calls/x y", `" "`},
		{"/communications/calls/x:y", `":"`},
		{"/communications/calls/user@contoso", `"@"`},
		{"/communications/calls/é", `"\xc3"`},
		{"/communications/calls/x\x00", `"\x00"`},
		{"/communications/calls/" + strings.Repeat("a", 129), "segment of 129 bytes exceeds 128"},
		{"/communications/calls/" + strings.Repeat("a", 10<<10), "longer than 1024 bytes"},
		{"/beta/communications/calls/x", "not under"},
		{"/communications/x", "not under"},
		{"/app/x", "not under"},
		{"/calls/x", "not under"},
		{"https://graph.microsoft.com/v1.0/communications/calls/x", "does not start with '/'"},
		{"/communications/calls/x/a/b/c/d/e/f", "more than 8 segments"},
	}
	for _, tt := range tests {
		rp, err := ParseResourcePath(tt.path)
		if err == nil {
			t.Errorf("ParseResourcePath(%q) = %+v, want an error", tt.path, rp)
			continue
		}
		if !strings.Contains(err.Error(), tt.why) {
			t.Errorf("ParseResourcePath(%q): %q does not say %q", tt.path, err, tt.why)
		}
		if len(err.Error()) > 200 {
			t.Errorf("ParseResourcePath(%q): error of %d bytes; attacker-sized paths must be cut", tt.path[:40], len(err.Error()))
		}
		if rp != (model.ResourcePath{}) {
			t.Errorf("ParseResourcePath(%q) returned %+v with its error", tt.path, rp)
		}
	}
}

// canonicalPath is the /communications form of a parsed path, for the
// round-trip property. ResourceOther keeps no shape, so it has none.
func canonicalPath(rp model.ResourcePath) (string, bool) {
	p := "/communications/calls/" + rp.CallID
	switch rp.Kind {
	case model.ResourceCall:
	case model.ResourceParticipants:
		p += "/participants"
	case model.ResourceOperation:
		p += "/operations"
	case model.ResourceContentSharing:
		p += "/contentsharingsessions"
	default:
		return "", false
	}
	if rp.SubID != "" {
		p += "/" + rp.SubID
	}
	return p, true
}
