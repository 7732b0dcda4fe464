package model

// ChangeType is a commsNotification's changeType.
type ChangeType string

// The change types Graph sends.
const (
	ChangeCreated ChangeType = "created"
	ChangeUpdated ChangeType = "updated"
	ChangeDeleted ChangeType = "deleted"
)

// EventKind says which payload a notification Event carries.
type EventKind uint8

// Event kinds. The zero value is EventUnknown so that a forgotten assignment
// is treated as "not understood", never as a call change.
const (
	EventUnknown        EventKind = iota // Raw holds the item
	EventCall                            // Call holds the call
	EventRoster                          // Participants holds the full roster
	EventRosterDelta                     // Delta holds the delta roster
	EventOperation                       // Operation holds the operation
	EventContentSharing                  // Sessions holds the sessions
)

var eventKindNames = [...]string{
	EventUnknown:        "unknown",
	EventCall:           "call",
	EventRoster:         "roster",
	EventRosterDelta:    "roster_delta",
	EventOperation:      "operation",
	EventContentSharing: "content_sharing",
}

// String returns a short, stable, metric-label-safe name.
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return "invalid"
}

// Quirk is one way a notification item departed from Graph's schema that
// the decoder tolerated: Microsoft's own published examples do these, so
// they are accepted, logged at debug and counted, never rejected.
type Quirk uint8

// Quirks, as bits of Event.Quirks.
const (
	QuirkNumberAsString   Quirk = 1 << iota // a number member written as a string ("code": "200")
	QuirkStringAsNumber                     // a string member written as a number
	QuirkPathWithoutSlash                   // resource or resourceUrl without its leading '/'
	QuirkIDMismatch                         // resourceData.id disagrees with the path's call id; the path wins
)

// AllQuirks lists every quirk, for metrics and tests.
var AllQuirks = []Quirk{QuirkNumberAsString, QuirkStringAsNumber, QuirkPathWithoutSlash, QuirkIDMismatch}

var quirkNames = map[Quirk]string{
	QuirkNumberAsString:   "number_as_string",
	QuirkStringAsNumber:   "string_as_number",
	QuirkPathWithoutSlash: "path_without_slash",
	QuirkIDMismatch:       "id_mismatch",
}

// String returns a short, stable, metric-label-safe name of one quirk.
func (q Quirk) String() string {
	if n, ok := quirkNames[q]; ok {
		return n
	}
	return "invalid"
}

// Has reports whether every bit of q2 is set in q.
func (q Quirk) Has(q2 Quirk) bool { return q&q2 == q2 }

// ResourceKind is what a notification's resource path addresses.
type ResourceKind uint8

// Resource kinds, from the path's shape after /calls/{id}.
const (
	ResourceOther          ResourceKind = iota // a shape botd does not know
	ResourceCall                               // /calls/{id}
	ResourceParticipants                       // /calls/{id}/participants[/{pid}]
	ResourceOperation                          // /calls/{id}/operations/{opid}
	ResourceContentSharing                     // /calls/{id}/contentsharingsessions[/{sid}]
)

var resourceKindNames = [...]string{
	ResourceOther:          "other",
	ResourceCall:           "call",
	ResourceParticipants:   "participants",
	ResourceOperation:      "operation",
	ResourceContentSharing: "content_sharing",
}

// String returns a short, stable, metric-label-safe name.
func (k ResourceKind) String() string {
	if int(k) < len(resourceKindNames) {
		return resourceKindNames[k]
	}
	return "invalid"
}

// ResourcePath is a parsed notification resource path, from either the
// /communications/calls/... or the legacy /app/calls/... form.
type ResourcePath struct {
	CallID string
	Kind   ResourceKind
	// SubID is the segment after the collection: a participant id, an
	// operation id, or a session id. For invite example 2's
	// ".../operations/participants" it is "participants", which is not an
	// operation id; the operation is then matched by clientContext.
	SubID string
}

// DeltaRoster is Graph's deltaParticipants: a numbered change to the roster.
type DeltaRoster struct {
	SequenceNumber int64
	Participants   []Participant
}

// Event is one decoded commsNotification. Kind says which of the payload
// fields is set; the others are zero.
type Event struct {
	// Index is the item's position in the batch's value array.
	Index       int
	ChangeType  ChangeType
	Resource    string // legacy /app/calls/... path, if sent
	ResourceURL string // /communications/calls/... path, if sent
	CallbackURI string
	Path        ResourcePath
	// ODataType is resourceData's @odata.type (of the first element when
	// resourceData is an array).
	ODataType string

	Kind         EventKind
	Call         *Call
	Participants []Participant
	Delta        *DeltaRoster
	Operation    *Operation
	Sessions     []ContentSharingSession
	// Raw is the item's JSON, kept for unknown events only.
	Raw []byte
	// Quirks are the schema departures the decoder tolerated in the item.
	Quirks Quirk
	// TenantID is the tenant (tid) of the callback token that carried the
	// item, set by the callback handler when inbound auth is on. A call
	// without a tenantId of its own takes it.
	TenantID string
}

// CallID returns the id of the call the event belongs to: the path's call id,
// or, when the path had none, the id inside a call resource.
func (e *Event) CallID() string {
	if e.Path.CallID != "" {
		return e.Path.CallID
	}
	if e.Call != nil {
		return e.Call.ID
	}
	return ""
}
