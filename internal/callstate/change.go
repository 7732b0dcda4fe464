package callstate

import (
	"time"

	"github.com/botd/botd/internal/model"
)

// ChangeKind says what a Change reports.
type ChangeKind uint8

// Change kinds. The zero value is not a kind the Store makes.
const (
	_                     ChangeKind = iota
	CallTracked                      // first time the Store sees the call
	CallStateChanged                 // From -> To was applied
	CallEstablished                  // first time the call reached established
	CallTerminated                   // the call reached terminated
	CallIncoming                     // the call became incoming: the server answers it from Call
	ParticipantJoined                // Participant joined the roster
	ParticipantLeft                  // Participant left the roster
	ParticipantUpdated               // Participant changed (mute, lobby, media...)
	OperationCompleted               // Operation reached completed
	OperationFailed                  // Operation reached failed (by Graph, locally, or "timeout")
	RosterNeedsResync                // held deltas gave up on a gap: list the participants and call ReplaceRoster
	ContentSharingStarted            // Session started (or was first seen)
	ContentSharingUpdated            // Session changed
	ContentSharingEnded              // Session ended
	ToneReceived                     // Tone: a key press, once per sequenceId
	CallRestored                     // the call was put back from the journal at start (To: its state)
	numChangeKinds
)

var changeKindNames = [...]string{
	0:                     "invalid",
	CallTracked:           "call_tracked",
	CallStateChanged:      "call_state_changed",
	CallEstablished:       "call_established",
	CallTerminated:        "call_terminated",
	CallIncoming:          "call_incoming",
	ParticipantJoined:     "participant_joined",
	ParticipantLeft:       "participant_left",
	ParticipantUpdated:    "participant_updated",
	OperationCompleted:    "operation_completed",
	OperationFailed:       "operation_failed",
	RosterNeedsResync:     "roster_needs_resync",
	ContentSharingStarted: "content_sharing_started",
	ContentSharingUpdated: "content_sharing_updated",
	ContentSharingEnded:   "content_sharing_ended",
	ToneReceived:          "tone_received",
	CallRestored:          "call_restored",
}

// String returns a stable snake_case name, safe as a metric label.
func (k ChangeKind) String() string {
	if int(k) < len(changeKindNames) {
		return changeKindNames[k]
	}
	return "invalid"
}

// MarshalText makes a ChangeKind marshal as its String.
func (k ChangeKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Change is one thing that happened to a call. The pointers it carries are
// snapshots owned by the Change's receivers, shared between them: treat them
// as read-only.
type Change struct {
	Kind   ChangeKind `json:"kind"`
	CallID string     `json:"callId"`
	At     time.Time  `json:"at"`
	// From and To are the states of a CallStateChanged (To also on
	// CallIncoming, CallEstablished and CallTerminated).
	From model.CallState `json:"from,omitempty"`
	To   model.CallState `json:"to,omitempty"`
	// Call is a snapshot of the call resource's fields, set on the call
	// kinds (CallTracked, CallStateChanged, CallIncoming, CallEstablished,
	// CallTerminated).
	Call        *model.Call                  `json:"call,omitempty"`
	Participant *model.Participant           `json:"participant,omitempty"`
	Operation   *OperationView               `json:"operation,omitempty"`
	Session     *model.ContentSharingSession `json:"session,omitempty"`
	Tone        *ToneView                    `json:"tone,omitempty"`
	// Reason says why, where there is more to say than the kind: the reason
	// given to MarkTerminated or FailOperation, "timeout", "gap_timeout"...
	Reason string `json:"reason,omitempty"`
	// Event is the index, in its batch's value array, of the notification
	// item that caused the change; -1 when no notification did (botd's own
	// calls, Run).
	Event int `json:"event"`
}
