package notify

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/botd/botd/internal/model"
)

// mediaSummary is what TestMediaExamples checks of one event.
type mediaSummary struct {
	Kind     model.EventKind
	Change   model.ChangeType
	CallID   string
	PathKind model.ResourceKind
	SubID    string
	Quirks   model.Quirk

	State      model.CallState
	Tone       model.Tone
	SequenceID int64

	OpType           string
	OpID             string
	OpStatus         model.OperationStatus
	ClientContext    string
	CompletionReason string
	RecordingLoc     string
	RecordingToken   string
	Code, Subcode    int32

	Participant string // id
	Muted       bool
	Stream      string // mediaType/direction of the first stream
}

func summarizeMedia(ev *model.Event) mediaSummary {
	s := mediaSummary{Kind: ev.Kind, Change: ev.ChangeType, CallID: ev.CallID(), PathKind: ev.Path.Kind, SubID: ev.Path.SubID, Quirks: ev.Quirks}
	var ri *model.ResultInfo
	if c := ev.Call; c != nil {
		s.State, ri = c.State, c.ResultInfo
		if c.ToneInfo != nil {
			s.Tone, s.SequenceID = c.ToneInfo.Tone, c.ToneInfo.SequenceID
		}
	}
	if op := ev.Operation; op != nil {
		s.OpType, s.OpID, s.OpStatus, s.ClientContext = op.ODataType, op.ID, op.Status, op.ClientContext
		s.CompletionReason, s.RecordingLoc, s.RecordingToken = op.CompletionReason, op.RecordingLocation, op.RecordingAccessToken
		ri = op.ResultInfo
	}
	if ri != nil {
		s.Code, s.Subcode = ri.Code, ri.Subcode
	}
	if len(ev.Participants) > 0 {
		p := ev.Participants[0]
		s.Participant, s.Muted = p.ID, p.IsMuted
		if len(p.MediaStreams) > 0 {
			s.Stream = p.MediaStreams[0].MediaType + "/" + p.MediaStreams[0].Direction
		}
	}
	return s
}

// Ids of Microsoft's media examples.
const (
	mediaCall    = "57dab8b1-894c-409a-b240-bd8beae78896"
	mediaCallUC  = "57DAB8B1894C409AB240BD8BEAE78896" // playPrompt, recordResponse: no dashes, upper case
	mediaOpUC    = "0FE0623FD62842EDB4BD8AC290072CC5"
	mediaContext = "d45324c1-fcb5-430a-902c-f20af696537c"
	dtmfCall     = "481f3600-983e-4276-9b59-c1b30ec8d125"
	dtmfOp       = "d36fe651-9f50-484d-bd4b-1e6415eae448"
	dtmfContext  = "e0be71f1-a14f-4cec-b65a-e7aba5db7c53"
	holdCall     = "e141b67c-90fd-455d-858b-b48a40b9cc8d"
	holdOp       = "0fe0623f-d628-42ed-b4bd-8ac290072cc5"
	bob          = "2765eb15-01f8-47c6-b12b-c32111a4a86f"
)

func dtmf(reason string) mediaSummary {
	return mediaSummary{
		Kind: model.EventOperation, Change: model.ChangeDeleted, CallID: dtmfCall, PathKind: model.ResourceOperation, SubID: dtmfOp,
		OpType: model.ODataSendDtmfTonesOp, OpID: dtmfOp, OpStatus: model.OpCompleted, ClientContext: dtmfContext, CompletionReason: reason,
	}
}

func hold(odt string) mediaSummary {
	return mediaSummary{
		Kind: model.EventOperation, Change: model.ChangeDeleted, CallID: holdCall, PathKind: model.ResourceOperation, SubID: holdOp,
		Quirks: model.QuirkPathWithoutSlash, OpType: odt, OpStatus: model.OpCompleted, ClientContext: mediaContext,
	}
}

func bobRoster(muted bool, stream string) mediaSummary {
	return mediaSummary{
		Kind: model.EventRoster, Change: model.ChangeUpdated, CallID: mediaCall, PathKind: model.ResourceParticipants,
		Participant: bob, Muted: muted, Stream: stream,
	}
}

// mediaWant holds, for each of Microsoft's media notification examples in
// testdata/media (sources in its INDEX.tsv), the one event it must decode to.
var mediaWant = map[string]mediaSummary{
	"call-playprompt-1.json": {
		Kind: model.EventOperation, Change: model.ChangeDeleted, CallID: mediaCallUC, PathKind: model.ResourceOperation, SubID: mediaOpUC,
		OpType: model.ODataPlayPromptOp, OpStatus: model.OpCompleted, ClientContext: mediaContext, Code: 200,
	},
	"call-record-1.json": {
		Kind: model.EventOperation, Change: model.ChangeDeleted, CallID: mediaCallUC, PathKind: model.ResourceOperation, SubID: mediaOpUC,
		OpType: model.ODataRecordOp, OpID: holdOp, OpStatus: model.OpCompleted, ClientContext: mediaContext, Code: 200, Subcode: 8515,
		RecordingLoc: "https://file.location/17e3b46c-f61d-4f4d-9635-c626ef18e6ad", RecordingToken: "<access-token>",
	},
	"call-cancelmediaprocessing-1.json": {
		Kind: model.EventOperation, Change: model.ChangeDeleted, CallID: mediaCallUC, PathKind: model.ResourceOperation, SubID: mediaOpUC,
		OpType: model.ODataRecordOp, OpID: holdOp, OpStatus: model.OpFailed, ClientContext: mediaContext, Code: 400, Subcode: 8508,
		CompletionReason: model.RecordOperationCanceled,
	},
	"call-subscribetotone-1.json": {
		Kind: model.EventCall, Change: model.ChangeUpdated, CallID: mediaCall, PathKind: model.ResourceCall,
		State: model.StateEstablished, Tone: model.Tone1, SequenceID: 1,
	},
	"call-senddtmftones-1.json":           dtmf(model.CompletedSuccessfully),
	"call-senddtmftones-2.json":           dtmf(model.MediaOperationCanceled),
	"call-senddtmftones-3.json":           dtmf("unknown"),
	"participant-startholdmusic-1.json":   hold(model.ODataStartHoldMusicOp),
	"participant-stopholdmusic-1.json":    hold(model.ODataStopHoldMusicOp),
	"call-mute-1.json":                    bobRoster(true, "audio/sendReceive"),
	"participant-mute-1.json":             bobRoster(true, "audio/sendReceive"),
	"call-unmute-1.json":                  bobRoster(false, "audio/sendReceive"),
	"call-changescreensharingrole-1.json": bobRoster(false, "videoBasedScreenSharing/sendOnly"),
	"call-delete-1.json": {
		Kind: model.EventCall, Change: model.ChangeUpdated, CallID: mediaCall, PathKind: model.ResourceCall, State: model.StateTerminating,
	},
	"call-delete-2.json": {
		Kind: model.EventCall, Change: model.ChangeDeleted, CallID: mediaCall, PathKind: model.ResourceCall, State: model.StateTerminated,
		Code: 200, Subcode: 5001, Quirks: model.QuirkNumberAsString,
	},
}

// mediaFiles lists testdata/media per its INDEX.tsv, and fails if the index
// and the directory disagree.
func mediaFiles(t testing.TB) []string {
	t.Helper()
	return indexedFiles(t, filepath.Join("testdata", "media"), "*.json", func(cols []string) bool {
		if len(cols) != 3 || !strings.HasPrefix(cols[1], "https://learn.microsoft.com/") {
			if cols[0] != "file" {
				t.Fatalf("INDEX.tsv line %q: want file, learn.microsoft.com URL, how the JSON was taken", strings.Join(cols, "\t"))
			}
			return false
		}
		return true
	})
}

func TestMediaExamples(t *testing.T) {
	files := mediaFiles(t)
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			want, ok := mediaWant[name]
			if !ok {
				t.Fatalf("no row in mediaWant for %s", name)
			}
			body, err := os.ReadFile(filepath.Join("testdata", "media", name))
			if err != nil {
				t.Fatal(err)
			}
			ev := decodeSingle(t, body)
			got := summarizeMedia(ev)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("event:\n got %+v\nwant %+v", got, want)
			}
			if ev.Call != nil && ev.Call.ID != "" && ev.Call.ID != ev.Path.CallID {
				t.Errorf("call id %q at path %q", ev.Call.ID, ev.Path.CallID)
			}
			for i := range body {
				body[i] = 'X'
			}
			if again := summarizeMedia(ev); !reflect.DeepEqual(again, got) {
				t.Errorf("event changed when the body was overwritten: it aliases the body")
			}
		})
	}
	if len(mediaWant) != len(files) {
		t.Errorf("mediaWant has %d rows for %d files", len(mediaWant), len(files))
	}
}

// TestMediaExamplesCrossCheckStdlib: the quirk-free examples decode as
// encoding/json decodes them, so the new members are read as the model's
// JSON tags name them.
func TestMediaExamplesCrossCheckStdlib(t *testing.T) {
	for _, name := range mediaFiles(t) {
		if mediaWant[name].Quirks != 0 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "media", name))
			if err != nil {
				t.Fatal(err)
			}
			b, err := NewDecoder(DefaultLimits()).Decode(body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want, err := stdDecode(body)
			if err != nil {
				t.Fatalf("stdDecode: %v", err)
			}
			if !reflect.DeepEqual(b.Events, want) {
				t.Errorf("Decode and encoding/json disagree:\n got %+v\nwant %+v", b.Events, want)
			}
		})
	}
}
