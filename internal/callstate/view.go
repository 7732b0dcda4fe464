package callstate

import (
	"fmt"
	"strconv"
	"time"

	"github.com/botd/botd/internal/model"
)

// CallView is a copy of one call's state, for the admin API and tests. The
// JSON names are Graph's where Graph has the property. Its slices are its
// own; what they and the resource fields point to is shared with the Store
// and must not be modified.
type CallView struct {
	ID                     string                            `json:"id"`
	State                  model.CallState                   `json:"state"`
	Direction              string                            `json:"direction,omitempty"`
	CallChainID            string                            `json:"callChainId,omitempty"`
	MyParticipantID        string                            `json:"myParticipantId,omitempty"`
	TenantID               string                            `json:"tenantId,omitempty"`
	Subject                string                            `json:"subject,omitempty"`
	Source                 *model.ParticipantInfo            `json:"source,omitempty"`
	Targets                []model.InvitationParticipantInfo `json:"targets,omitempty"`
	ChatInfo               *model.ChatInfo                   `json:"chatInfo,omitempty"`
	MeetingInfo            *model.MeetingInfo                `json:"meetingInfo,omitempty"`
	ResultInfo             *model.ResultInfo                 `json:"resultInfo,omitempty"`
	CallbackURI            string                            `json:"callbackUri,omitempty"`
	Participants           []model.Participant               `json:"participants"`
	Operations             []OperationView                   `json:"operations"`
	ContentSharingSessions []model.ContentSharingSession     `json:"contentSharingSessions"`
	// Tones are the key presses received after subscribeToTone, by
	// sequenceId, the newest MaxTonesPerCall.
	Tones             []ToneView   `json:"tones"`
	Transitions       []Transition `json:"transitions"`
	RosterNeedsResync bool         `json:"rosterNeedsResync"`
	// RosterSequenceNumber is the sequenceNumber of the last delta roster
	// applied (0 before the first).
	RosterSequenceNumber int64     `json:"rosterSequenceNumber"`
	CreatedByBot         bool      `json:"createdByBot"`
	CreatedAt            time.Time `json:"createdAt"`
	UpdatedAt            time.Time `json:"updatedAt"`
	EstablishedAt        time.Time `json:"establishedAt,omitzero"`
	TerminatedAt         time.Time `json:"terminatedAt,omitzero"`
}

// CallSummary is one line of Calls.
type CallSummary struct {
	ID               string          `json:"id"`
	State            model.CallState `json:"state"`
	Direction        string          `json:"direction,omitempty"`
	ParticipantCount int             `json:"participantCount"`
	CreatedAt        time.Time       `json:"createdAt"`
	UpdatedAt        time.Time       `json:"updatedAt"`
}

// Transition is one entry of a call's history: a state change applied, or
// one refused (Ignored, with Reason).
type Transition struct {
	From model.CallState `json:"from"`
	To   model.CallState `json:"to"`
	At   time.Time       `json:"at"`
	// Cause is "notification value[i] changeType X" for a notification, or
	// "botd: ..." for botd's own calls (TrackCall, MarkTerminated).
	Cause   string `json:"cause"`
	Ignored bool   `json:"ignored,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// origin is what Cause is made of, kept instead of its text so that
	// applying a notification formats nothing.
	origin origin
}

// origin is what caused a transition: a notification item, or botd.
type origin struct {
	idx        int
	changeType model.ChangeType
	botd       string
}

// appendText appends the cause's text: "botd: ..." for botd's own
// calls, "notification value[i] changeType X" for a notification.
func (o origin) appendText(dst []byte) []byte {
	if o.botd != "" {
		return append(append(dst, "botd: "...), o.botd...)
	}
	dst = append(dst, "notification value["...)
	dst = strconv.AppendInt(dst, int64(o.idx), 10)
	dst = append(dst, "] changeType "...)
	return append(dst, o.changeType...)
}

func (o origin) String() string {
	var b [64]byte
	return string(o.appendText(b[:0]))
}

// MarshalJSON is AppendJSON's, so that a Record fresh from the Store,
// whose causes are not yet text, encodes whole with encoding/json too.
func (t Transition) MarshalJSON() ([]byte, error) { return t.AppendJSON(nil) }

// AppendJSON appends t's JSON to dst: the members and values
// encoding/json would give t from its tags, read back with json.Unmarshal,
// with an empty Cause written as its origin's text (as views show it),
// written without reflection (a journal writes each transition of every
// call; encoding/json spent most of a record's encoding on them). A time
// encoding/json refuses (a year outside 0-9999) is refused here too.
func (t *Transition) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"from":`...)
	dst = model.AppendQuote(dst, string(t.From))
	dst = append(dst, `,"to":`...)
	dst = model.AppendQuote(dst, string(t.To))
	dst = append(dst, `,"at":"`...)
	dst, err := t.At.AppendText(dst)
	if err != nil {
		return dst, fmt.Errorf("transition at: %w", err)
	}
	dst = append(dst, `","cause":`...)
	if t.Cause != "" {
		dst = model.AppendQuote(dst, t.Cause)
	} else {
		var b [96]byte
		dst = model.AppendQuote(dst, t.origin.appendText(b[:0]))
	}
	if t.Ignored {
		dst = append(dst, `,"ignored":true`...)
	}
	if t.Reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = model.AppendQuote(dst, t.Reason)
	}
	return append(dst, '}'), nil
}

// OperationRecord is an outbound operation botd sent, given to
// TrackOperation.
type OperationRecord struct {
	// ID is the operation id, often "" until Graph answers (OperationSent).
	ID string
	// Type is the action: "invite", "answer", "transfer", "playPrompt"...
	// See the metrics table in docs/callstate.md for the known values; any
	// other counts as "other" in metrics.
	Type          string
	ClientContext string
	Participants  []model.InvitationParticipantInfo
}

// OperationView is one operation of a call.
type OperationView struct {
	ID            string                            `json:"id"`
	Type          string                            `json:"type"`
	Status        model.OperationStatus             `json:"status"`
	ClientContext string                            `json:"clientContext,omitempty"`
	ResultInfo    *model.ResultInfo                 `json:"resultInfo,omitempty"`
	Participants  []model.InvitationParticipantInfo `json:"participants,omitempty"`
	// SentByBot is false for an operation botd learnt of only from a
	// notification.
	SentByBot     bool      `json:"sentByBot"`
	CreatedAt     time.Time `json:"createdAt"`
	CompletedAt   time.Time `json:"completedAt,omitzero"`
	FailureReason string    `json:"failureReason,omitempty"`
	// CompletionReason, RecordingLocation and RecordingAccessToken are the
	// results of media operations (playPrompt, recordResponse,
	// sendDtmfTones), as Graph's final notification gives them.
	CompletionReason     string `json:"completionReason,omitempty"`
	RecordingLocation    string `json:"recordingLocation,omitempty"`
	RecordingAccessToken Secret `json:"recordingAccessToken,omitempty"`
}

// ToneView is one key press received on a call.
type ToneView struct {
	Tone       model.Tone `json:"tone"`
	Key        string     `json:"key"` // the keypad character: 0-9, *, #, A-D, F (flash)
	SequenceID int64      `json:"sequenceId"`
	At         time.Time  `json:"at"`
}

// Secret is a value that must not be shown: it marshals (JSON, text, and
// so zerolog's Interface) masked, and prints masked with %v and %s. Reveal
// returns the value itself, for the code that uses it.
type Secret string

// Masked is the shown form: "****" and, for a long value, its last four
// characters.
func (s Secret) Masked() string {
	if len(s) < 16 {
		return "****"
	}
	return "****" + string(s[len(s)-4:])
}

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String masks.
func (s Secret) String() string { return s.Masked() }

// MarshalText masks; an empty secret stays empty.
func (s Secret) MarshalText() ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	return []byte(s.Masked()), nil
}
