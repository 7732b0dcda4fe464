// Package graph is botd's typed client for Microsoft Graph cloud
// communications: create call, invite participants, answer, reject,
// redirect, transfer, keepAlive, hang up, the service-hosted media and
// participant actions (playPrompt, recordResponse, subscribeToTone,
// sendDtmfTones, cancelMediaProcessing, mute and unmute, mute or remove a
// participant, hold music, updateRecordingStatus, changeScreenSharingRole),
// and the reads (call, participants, operation).
//
// It owns talking to Graph over HTTP: the client-credentials token (one
// cached token source per client), validating request bodies before anything
// is sent, per-attempt deadlines, the client-request-id header, retries with
// backoff that honour Retry-After, decoding Graph's error body, and the
// metrics and debug logs of every request.
//
// It knows nothing of notifications or call state: internal/notify decodes
// what Graph posts back, internal/callstate decides what to do, and the
// caller reconciles a POST whose outcome is unknown (OutcomeUnknownError) by
// its clientContext.
package graph
