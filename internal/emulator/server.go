// Package emulator is an in-memory Microsoft Graph cloud-communications
// service for tests and local runs: the client-credentials token endpoint
// and the calls API (create call, invite, answer, reject, redirect,
// transfer, keepAlive, delete, get call, list participants, get operation)
// with Graph's response shapes, status codes, Location headers and error
// bodies.
//
// It owns the fake's state (calls, operations, rosters, issued tokens), a
// record of every request it received, and scripted faults per route
// (status sequences with Retry-After, delays, failing token endpoint). It
// does not post notifications to callback URIs: Options.OnEvent is the hook
// through which a notifier (a later component) learns what happened.
//
// It imports no botd package but internal/model, so any package's tests —
// the Graph client's, the server's, an emulator's — can run against it.
package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
)

// Route names an endpoint of the fake, for scripting faults and filtering
// recorded requests.
type Route string

// The fake's routes.
const (
	RouteToken            Route = "token"
	RouteCreateCall       Route = "create_call"
	RouteGetCall          Route = "get_call"
	RouteDeleteCall       Route = "delete_call"
	RouteAnswer           Route = "answer"
	RouteReject           Route = "reject"
	RouteRedirect         Route = "redirect"
	RouteTransfer         Route = "transfer"
	RouteKeepAlive        Route = "keep_alive"
	RouteInvite           Route = "invite"
	RouteListParticipants Route = "list_participants"
	RouteGetOperation     Route = "get_operation"
	RouteUnknown          Route = "unknown" // no route matched
)

// Defaults for Options.
const (
	DefaultTenantID     = "fake-tenant"
	DefaultClientID     = "fake-client"
	DefaultClientSecret = "fake-secret"
	DefaultTokenTTL     = time.Hour
)

// Options configures a Server. The zero value works.
type Options struct {
	// Credentials the token endpoint accepts (defaults above).
	TenantID, ClientID, ClientSecret string
	// TokenTTL is the expires_in of issued tokens (default 1h, whole
	// seconds, at least 1s). Graph routes refuse a token past its expiry
	// with 401.
	TokenTTL time.Duration
	// PageSize splits list-participants answers into pages linked by
	// @odata.nextLink; 0 answers in one page.
	PageSize int
	// Now is the fake's clock (token expiry, error dates); default time.Now.
	Now func() time.Time
	// Log receives one Debug line per request (route, method, path,
	// status). The zero value logs nothing.
	Log zerolog.Logger
	// OnEvent, if set, is called after each state change (call created,
	// invite accepted for processing, answer, ...), on the request's
	// goroutine, after the state is stored and before the response is
	// written. It must not block: a notifier should post to the call's
	// callbackUri from its own goroutine.
	OnEvent func(Event)
}

// EventKind says what changed.
type EventKind string

// Event kinds.
const (
	EventCallCreated EventKind = "call_created"
	EventInvite      EventKind = "invite"
	EventAnswer      EventKind = "answer"
	EventReject      EventKind = "reject"
	EventRedirect    EventKind = "redirect"
	EventTransfer    EventKind = "transfer"
	EventHangup      EventKind = "hangup"
)

// Event is a state change, for Options.OnEvent.
type Event struct {
	Kind   EventKind
	CallID string
	// Call is a snapshot of the call after the change.
	Call model.Call
	// Operation is set for EventInvite.
	Operation *model.Operation
	// Body is the request body that caused the change.
	Body json.RawMessage
}

// Request is one request the fake received, as recorded.
type Request struct {
	Route           Route
	Method          string
	Path            string // escaped path and query as received
	Header          http.Header
	Body            []byte // token requests have client_secret redacted
	ClientRequestID string
	CallID          string // the {id} path value, unescaped, if any
}

// Fault scripts one answer of a route, replacing (or delaying) the normal
// one.
type Fault struct {
	// Status to answer with; 0 answers normally (after Delay).
	Status int
	// RetryAfter, if set, is sent as the Retry-After header.
	RetryAfter string
	// Header is added to the answer.
	Header http.Header
	// Body is written as is; when empty and Status >= 400 a Graph error
	// body (OAuth error body for the token route) is generated.
	Body []byte
	// Code is the error code of a generated error body (default derived
	// from Status).
	Code string
	// Delay waits before answering (to provoke client timeouts). A client
	// that gives up meanwhile still has its request processed, as Graph
	// would; Close ends the wait without processing.
	Delay time.Duration
	// Apply processes the request normally (state changes, events) and
	// then answers with Status: a 504 or a lost answer after the call was
	// created.
	Apply bool
}

type callState struct {
	call         model.Call
	participants []model.Participant
	operations   map[string]model.Operation
}

type issuedToken struct {
	expiry time.Time
}

// Server is the fake Graph. Create it with New, then Start it (or mount
// Handler); Close releases it.
type Server struct {
	opts Options
	mux  *http.ServeMux
	// routes maps a mux pattern to its Route.
	routes map[string]Route
	closed chan struct{}

	mu       sync.Mutex
	srv      *http.Server
	url      string
	requests []Request
	scripts  map[Route][]Fault
	sticky   map[Route]*Fault
	calls    map[string]*callState
	order    []string // call ids in creation order
	tokens   map[string]issuedToken
	fetches  int
	issued   int

	closeOnce sync.Once
}

// New returns a Server that is not listening yet.
func New(opts Options) *Server {
	if opts.TenantID == "" {
		opts.TenantID = DefaultTenantID
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:    opts,
		mux:     http.NewServeMux(),
		routes:  map[string]Route{},
		closed:  make(chan struct{}),
		scripts: map[Route][]Fault{},
		sticky:  map[Route]*Fault{},
		calls:   map[string]*callState{},
		tokens:  map[string]issuedToken{},
	}
	s.register()
	return s
}

// Start returns a new Server already serving on a loopback port.
func Start(opts Options) (*Server, error) {
	s := New(opts)
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start serves the fake on a loopback port, like httptest.Server.Start:
// it panics if it cannot listen or was already started.
func (s *Server) Start() {
	if err := s.listen(); err != nil {
		panic(err)
	}
}

func (s *Server) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return fmt.Errorf("emulator: already started")
	}
	select {
	case <-s.closed:
		return fmt.Errorf("emulator: closed")
	default:
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.url = "http://" + ln.Addr().String()
	go func(srv *http.Server) { _ = srv.Serve(ln) }(s.srv)
	return nil
}

// Close stops the server: pending delays end, in-flight handlers return,
// then listener and connections are closed. It is safe to call more than
// once, and on a server never started.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.mu.Lock()
		srv := s.srv
		s.mu.Unlock()
		if srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
	})
}

// URL is the server's root URL, e.g. http://127.0.0.1:4242 ("" before Start).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// BaseURL is the Graph base URL to configure a client with: URL()+"/v1.0".
func (s *Server) BaseURL() string { return s.URL() + "/v1.0" }

// GraphURL is BaseURL, under the name the emulator uses.
func (s *Server) GraphURL() string { return s.BaseURL() }

// TokenURL is the token endpoint for the configured tenant.
func (s *Server) TokenURL() string {
	return s.URL() + "/" + s.opts.TenantID + "/oauth2/v2.0/token"
}

// Options returns the options in effect (defaults applied), e.g. to
// configure a client with the fake's credentials.
func (s *Server) Options() Options { return s.opts }

// Handler returns the fake as an http.Handler, to mount without Start.
func (s *Server) Handler() http.Handler { return s }

// Script queues faults for route: each request to route takes the next one
// until the queue is empty. Scripted faults come before a sticky one.
func (s *Server) Script(route Route, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[route] = append(s.scripts[route], faults...)
}

// SetFault makes every request to route answer with f until SetFault(route,
// nil): a token endpoint that is down, a Graph that keeps throttling.
func (s *Server) SetFault(route Route, f *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		delete(s.sticky, route)
		return
	}
	cp := *f
	s.sticky[route] = &cp
}

// nextFault pops the route's next scripted fault or returns its sticky
// one. Callers hold no lock.
func (s *Server) nextFault(route Route) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.scripts[route]; len(q) > 0 {
		f := q[0]
		s.scripts[route] = q[1:]
		return f, true
	}
	if f := s.sticky[route]; f != nil {
		return *f, true
	}
	return Fault{}, false
}

// Requests returns the recorded requests, all of them or those to the
// given routes, in arrival order.
func (s *Server) Requests(routes ...Route) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if len(routes) == 0 || containsRoute(routes, r.Route) {
			out = append(out, cloneRequest(r))
		}
	}
	return out
}

// GraphRequests returns the recorded requests other than token requests.
func (s *Server) GraphRequests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if r.Route != RouteToken {
			out = append(out, cloneRequest(r))
		}
	}
	return out
}

func containsRoute(rs []Route, r Route) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func cloneRequest(r Request) Request {
	r.Header = r.Header.Clone()
	r.Body = append([]byte(nil), r.Body...)
	return r
}

// TokenFetches counts requests to the token endpoint, failed ones included.
func (s *Server) TokenFetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// TokensIssued counts tokens the endpoint handed out.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// ExpireTokens makes every issued token invalid: Graph routes answer 401
// until a new one is fetched.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Reset forgets recorded requests and pending faults; calls stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	clear(s.scripts)
	clear(s.sticky)
}

// PutCall stores a call as is, replacing one with the same id: an incoming
// call to answer, reject or redirect (state "incoming"), or any state a
// test needs. A call without id gets one. It returns the id.
func (s *Server) PutCall(call model.Call) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if call.ID == "" {
		call.ID = uuid.NewString()
	}
	if cs, ok := s.calls[call.ID]; ok {
		cs.call = call
		return call.ID
	}
	s.calls[call.ID] = &callState{call: call, operations: map[string]model.Operation{}}
	s.order = append(s.order, call.ID)
	return call.ID
}

// Call returns a snapshot of a call.
func (s *Server) Call(id string) (model.Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.calls[id]
	if !ok {
		return model.Call{}, false
	}
	return cs.call, true
}

// Calls returns snapshots of all calls in creation order.
func (s *Server) Calls() []model.Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]model.Call, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.calls[id].call)
	}
	return out
}

// SetParticipants replaces a call's roster. It reports false if there is
// no such call.
func (s *Server) SetParticipants(callID string, ps []model.Participant) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.calls[callID]
	if !ok {
		return false
	}
	cs.participants = append([]model.Participant(nil), ps...)
	return true
}

// Participants returns a call's roster.
func (s *Server) Participants(callID string) []model.Participant {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs, ok := s.calls[callID]; ok {
		return append([]model.Participant(nil), cs.participants...)
	}
	return nil
}

// SetOperation stores an operation of a call (e.g. to complete an invite).
// It reports false if there is no such call.
func (s *Server) SetOperation(callID string, op model.Operation) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.calls[callID]
	if !ok {
		return false
	}
	cs.operations[op.ID] = op
	return true
}

// Operation returns an operation of a call.
func (s *Server) Operation(callID, opID string) (model.Operation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs, ok := s.calls[callID]; ok {
		op, ok := cs.operations[opID]
		return op, ok
	}
	return model.Operation{}, false
}
