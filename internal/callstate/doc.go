// Package callstate owns the state of every call botd knows about and the
// rules for applying Microsoft Graph notifications to it: the call's
// lifecycle (Graph's callState), its roster (full and delta), the operations
// botd sent on it, and its content-sharing sessions.
//
// It does no I/O: no HTTP, no Graph calls, no decoding (internal/notify
// decodes; internal/graph talks to Graph). Every method reports the Changes
// it caused and the server acts on them: it answers a CallIncoming, lists the
// participants after a RosterNeedsResync, and so on. The same Changes leave
// the store one way, by subscription, including those that Run produces
// (operation timeouts, roster gaps that never filled): Observe for a reader
// that must see every change (automation), Subscribe for a channel that is
// dropped when it falls behind (GET /v1/changes).
//
// Concurrency: the Store is a sharded map of calls, each with its own mutex.
// A shard lock is held only to look up or insert a call, never while an
// event is applied, so different calls never wait on each other, while the
// events of one call apply one at a time, in the order the callers reach its
// lock. Changes are handed to observers and subscribers outside every lock,
// yet in the order they were made for each call: whichever goroutine finds a
// call's outbox idle delivers it, so an observer may even call back into the
// Store.
//
// Memory is bounded: Config.MaxCalls caps the calls tracked, terminated calls
// are swept Config.Retention after they end, calls that never got a state
// (a roster or operation for an id botd never saw a call notification for)
// are swept after Config.Retention without activity, and each call's
// transition history, held deltas, operations and content-sharing sessions
// are capped. The id of a swept call is remembered (a tombstone) for another
// Config.Retention, so a late notification for it is ignored instead of
// bringing the call back; one that comes even later creates a fresh entry,
// which is swept again by the same rules.
package callstate
