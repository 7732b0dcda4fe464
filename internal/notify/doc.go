// Package notify turns the body of a Microsoft Graph commsNotifications
// callback into typed model.Events.
//
// It owns decoding and validation of the body and the parsing of the
// notifications' resource paths: what is JSON, what is a commsNotifications
// document, which item is which kind of event, and which limits a body must
// stay within. It leaves state to internal/callstate (which applies the
// events) and HTTP to internal/handlers (which reads the body, bounds its
// size, maps errors to statuses and counts outcomes). It does no logging and
// no I/O, and keeps no state between calls beyond reusable scratch buffers.
//
// Decoding is a single validating pass over the body with the jsontext
// tokenizer, plus a second short pass over each item's resourceData once the
// item's resource path and the data's @odata.type are known, since Graph
// does not promise member order. Every string an Event keeps is a fresh
// copy or an interned constant, never a slice of the request body: the call
// store keeps events for hours, and a string that aliased the body would
// pin the whole body in memory.
//
// Microsoft's own published notification examples are not all strictly
// typed, so the decoder tolerates four departures, applies the item anyway
// and notes each on Event.Quirks for internal/handlers to count and log:
// an integer written as a string holding a plain integer within the same
// bounds ("code": "200", QuirkNumberAsString); a number where the schema
// says string, kept as its literal text (QuirkStringAsNumber; not for
// resourceData's @odata.type or the enumerations botd checks: changeType,
// call state, operation status, tone, modalities); a
// resource or resourceUrl without its leading '/' (QuirkPathWithoutSlash);
// and a call resourceData whose id disagrees with the path's call id, where
// the path wins (QuirkIDMismatch). Anything else of the wrong type is still
// an item error, and every limit applies to the tolerated forms too.
package notify
