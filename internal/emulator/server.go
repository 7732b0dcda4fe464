// Package emulator is an in-memory Microsoft Graph cloud-communications
// service for tests and local runs. It answers the client-credentials token
// endpoint and the calls API (create call, invite, answer, reject,
// redirect, transfer, keepAlive, delete, get call, list participants, get
// operation, and the media and participant actions: playPrompt,
// recordResponse, subscribeToTone, sendDtmfTones, cancelMediaProcessing,
// mute, unmute, updateRecordingStatus, changeScreenSharingRole, participant
// mute, remove, startHoldMusic and stopHoldMusic) with Graph's response shapes, status codes, Location headers
// and error bodies, and then behaves like Graph afterwards: it posts signed
// commsNotifications to each call's callbackUri in the sequences Graph
// sends (establishing, established, roster, operation results,
// terminating, terminated), simulates the people being called (who answer,
// decline or never pick up), rings the bot with incoming calls on request
// (POST /emulator/incoming), presses keys for people scripted over HTTP
// (PUT /emulator/people/{key}), serves recorded responses, lists what it
// received and holds (/emulator/requests, /emulator/calls), ends calls that
// miss their keepAlive, and
// serves the OpenID configuration and JWKS a bot needs to verify the
// callbacks' JWTs.
//
// It owns the emulated state (calls, operations, rosters, issued tokens,
// the signing key), a record of every request it received and every
// notification it posted, scripted faults per route, and seeded fault
// injection (reordered, duplicated, delayed notifications, failed
// operations, roster gaps, throttling). All randomness comes from
// Options.Seed, and all delays go through Options.TimeScale, so a failing
// run can be repeated and a 45-minute rule can be tested in milliseconds.
//
// It imports no botd package but internal/model, so any package's tests —
// the Graph client's, the server's — can run against it, and botd's
// emulator mode can embed it.
package emulator

import (
	"container/heap"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
)

// Route names an endpoint of the emulator, for scripting faults and
// filtering recorded requests.
type Route string

// The emulator's routes.
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
	RouteOpenID           Route = "openid_configuration"
	RouteJWKS             Route = "jwks"
	RouteIncoming         Route = "emulator_incoming"

	RoutePlayPrompt              Route = "play_prompt"
	RouteRecordResponse          Route = "record_response"
	RouteSubscribeToTone         Route = "subscribe_to_tone"
	RouteSendDtmfTones           Route = "send_dtmf_tones"
	RouteCancelMediaProcessing   Route = "cancel_media_processing"
	RouteMute                    Route = "mute"
	RouteUnmute                  Route = "unmute"
	RouteUpdateRecordingStatus   Route = "update_recording_status"
	RouteChangeScreenSharingRole Route = "change_screen_sharing_role"
	RouteMuteParticipant         Route = "mute_participant"
	RouteRemoveParticipant       Route = "remove_participant"
	RouteStartHoldMusic          Route = "start_hold_music"
	RouteStopHoldMusic           Route = "stop_hold_music"
	// Emulator-only routes: recordings (bearer recordingAccessToken),
	// scripted people, the request record and the calls held.
	RouteRecording Route = "emulator_recording"
	RoutePeople    Route = "emulator_people"
	RouteRequests  Route = "emulator_requests"
	RouteCalls     Route = "emulator_calls"
	// RouteCallbackToken hands out the token the emulator's callbacks
	// carry, for a load generator posting notifications as Graph does.
	RouteCallbackToken Route = "emulator_callback_token"
	RouteUnknown       Route = "unknown" // no route matched
)

// graph reports whether the route is part of Graph's calls API, which
// needs a bearer token and can be throttled.
func (r Route) graph() bool {
	switch r {
	case RouteToken, RouteOpenID, RouteJWKS, RouteIncoming, RouteUnknown,
		RouteRecording, RoutePeople, RouteRequests, RouteCalls, RouteCallbackToken:
		return false
	}
	return true
}

// Defaults for Options.
const (
	DefaultTenantID         = "fake-tenant"
	DefaultClientID         = "fake-client"
	DefaultClientSecret     = "fake-secret"
	DefaultBotName          = "Calling Bot"
	DefaultTokenTTL         = time.Hour
	DefaultCallbackTokenTTL = time.Hour
	DefaultDeliveryRetries  = 3
	DefaultQueueLimit       = 256
	DefaultRetention        = time.Hour
	// maxRecorded bounds the request and delivery records, so that a
	// long-running standalone emulator does not grow without end.
	maxRecorded = 10000
)

// Options configures a Server. The zero value works: it accepts the
// default credentials, posts notifications only to loopback callback
// URLs, and picks a random seed (logged, and returned by Seed).
type Options struct {
	// Credentials the token endpoint accepts (defaults above). ClientID is
	// also the bot's application id: the audience of callback JWTs and the
	// id of the bot's identity in calls.
	TenantID, ClientID, ClientSecret string
	// Tenants are further tenants the token endpoint issues tokens for
	// (a multi-tenant bot), or AnyTenant for every one; TokenTenant tells
	// which tenant a token is of.
	Tenants []string
	// ClientCertificate, if set, lets the token endpoint accept a
	// certificate client assertion (private_key_jwt) signed by its key.
	ClientCertificate *x509.Certificate
	// FederatedIssuerKey, if set, lets the token endpoint accept a
	// federated client assertion (workload identity) signed by it.
	FederatedIssuerKey *rsa.PublicKey
	// TokenTTL is the expires_in of issued tokens (default 1h, whole
	// seconds, at least 1s). Graph routes refuse a token past its expiry
	// with 401.
	TokenTTL time.Duration
	// PageSize splits list-participants answers into pages linked by
	// @odata.nextLink; 0 answers in one page.
	PageSize int
	// Now is the emulator's wall clock (token expiry, JWT times, error
	// dates); default time.Now. Delays use timers, not Now.
	Now func() time.Time
	// Log receives one Debug line per request and per delivery, and an
	// Info line with the seed. The zero value logs nothing.
	Log zerolog.Logger
	// OnEvent, if set, is called after each state change a request makes
	// (call created, invite accepted for processing, answer, ...), on the
	// request's goroutine, after the state is stored and before the
	// response is written. It must not block.
	OnEvent func(Event)

	// BotCallbackURL is the bot's registered calling webhook: where
	// incoming calls (POST /emulator/incoming) are announced unless the
	// request names its own callbackUri.
	BotCallbackURL string
	// BotName is the display name of the bot's application identity
	// (default "Calling Bot").
	BotName string
	// CallbackHosts lists the hosts, besides loopback ones (127.0.0.0/8,
	// ::1, localhost), that notifications may be posted to; "*" allows any
	// host. Notifications for other hosts are counted as skipped, so that
	// tests whose calls name https://bot.contoso.com never touch the
	// network.
	CallbackHosts []string
	// HTTPClient posts notifications (default: a client with a 10 s
	// timeout). Tests can give one whose Transport calls a handler in
	// process.
	HTTPClient *http.Client
	// DeliveryRetries is how many times a notification is posted again
	// after a 5xx, a 429 or a connection error (default 3; negative: no
	// retries).
	DeliveryRetries int
	// QueueLimit is the most notifications one call may have waiting
	// (default 256); more are dropped and counted.
	QueueLimit int
	// SigningKey signs the callbacks' JWTs. Default: a 2048-bit RSA key
	// generated on first use (the first callback, or the first JWKS
	// request), so that tests that never see a callback do not pay for
	// key generation.
	SigningKey *rsa.PrivateKey
	// CallbackTokenTTL is the lifetime of a callback JWT (default 1h). A
	// token is reused for every callback until 5 minutes before it
	// expires, as Graph does.
	CallbackTokenTTL time.Duration

	// Seed makes every decision repeatable: ids, people's delays and
	// answers, injected faults. 0 picks a seed at random; Seed() returns
	// it and it is logged, so that a failing run can be repeated.
	Seed int64
	// TimeScale multiplies every emulator delay: Timing, ringing, the
	// 15 s incoming-call and 45 min keepAlive rules, delivery backoff and
	// injected delays. 0 means 1; 0.001 turns 45 minutes into 2.7 s.
	TimeScale float64
	// Timing holds Graph's delays before scaling; zero fields take their
	// defaults.
	Timing Timing
	// Retention is how long a terminated call stays readable (default 1h,
	// not scaled).
	Retention time.Duration

	// People decides how a simulated person answers. It is called with the
	// emulator's lock held and must not call the Server. A zero Behaviour
	// falls through to PeopleByID, then the phone-number conventions, then
	// the seeded default.
	People func(model.IdentitySet) Behaviour
	// PeopleByID maps an identity id (user, phone number, guest, ...) to
	// its behaviour.
	PeopleByID map[string]Behaviour
	// DeclineProbability and NoAnswerProbability are the chances that a
	// person with no configured behaviour declines or never answers. The
	// draw is seeded.
	DeclineProbability, NoAnswerProbability float64

	// Faults injects faults from the start; SetFaultRule and InjectNext
	// change them at run time.
	Faults map[FaultKind]FaultRule
}

// Timing is Graph's behaviour in time, before Options.TimeScale.
type Timing struct {
	// Step is the pause between the notifications of one sequence
	// (default 100 ms).
	Step time.Duration
	// Connect is how long an answered incoming call or a joined meeting
	// takes from establishing to established (default 1 s).
	Connect time.Duration
	// Answer is how long a person takes to pick up or decline; each
	// decision draws from [Answer/2, 3*Answer/2) (default 3 s).
	Answer time.Duration
	// Ring is how long a call or invitation rings before it fails as not
	// answered (default 60 s, Graph's invitation timeout).
	Ring time.Duration
	// Incoming is how long the bot has to answer an incoming call
	// (default 15 s).
	Incoming time.Duration
	// KeepAlive is how long a call lives without a keepAlive request
	// (default 45 min).
	KeepAlive time.Duration
	// FaultDelay is how long FaultDelay holds a notification (default 5 s).
	FaultDelay time.Duration
	// ReorderHold is how long FaultReorder holds a notification waiting
	// for the next one of its call to overtake it (default 10 s).
	ReorderHold time.Duration
	// RetryBackoff is the wait before the first delivery retry, doubled for
	// each further one (default 500 ms).
	RetryBackoff time.Duration
	// Prompt is how long one prompt of playPrompt or recordResponse plays
	// (default 2 s).
	Prompt time.Duration
	// Tone is how long sendDtmfTones takes per tone, before its
	// delayBetweenTonesMs (default 100 ms).
	Tone time.Duration
	// TonesAfter is how long a scripted person waits after a prompt before
	// pressing their first key, when the script gives no tonesAfter
	// (default 500 ms).
	TonesAfter time.Duration
	// RetryAfter is the Retry-After of FaultThrottle answers, in whole
	// seconds and not scaled, since it is the client's wait (default 1 s).
	RetryAfter time.Duration
}

func (t *Timing) withDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Step, 100*time.Millisecond)
	def(&t.Connect, time.Second)
	def(&t.Answer, 3*time.Second)
	def(&t.Ring, 60*time.Second)
	def(&t.Incoming, 15*time.Second)
	def(&t.KeepAlive, 45*time.Minute)
	def(&t.FaultDelay, 5*time.Second)
	def(&t.ReorderHold, 10*time.Second)
	def(&t.RetryBackoff, 500*time.Millisecond)
	def(&t.Prompt, 2*time.Second)
	def(&t.Tone, 100*time.Millisecond)
	def(&t.TonesAfter, 500*time.Millisecond)
	if t.RetryAfter < 0 {
		t.RetryAfter = 0
	} else if t.RetryAfter == 0 {
		t.RetryAfter = time.Second
	}
}

// EventKind says what changed.
type EventKind string

// Event kinds.
const (
	EventCallCreated EventKind = "call_created"
	EventIncoming    EventKind = "incoming"
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

// Request is one request the emulator received, as recorded.
type Request struct {
	Route Route
	// Pattern is the route's mux pattern, e.g.
	// "POST /{version}/communications/calls/{id}/playPrompt".
	Pattern string
	Method  string
	Path    string // escaped path and query as received
	Header  http.Header
	// Body is as received, with secrets redacted: client_secret and
	// client_assertion of token requests, any recordingAccessToken (or
	// client_secret, client_assertion) member of a JSON body.
	Body            []byte
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
	// Apply processes the request normally (state changes, events,
	// notifications) and then answers with Status: a 504 or a lost answer
	// after the call was created.
	Apply bool
}

type issuedToken struct {
	expiry time.Time
}

// Server is the emulator. Create it with New, then Start it (or mount
// Handler); Close releases it. Run serves one until a context ends.
type Server struct {
	opts Options
	mux  *http.ServeMux
	// routes maps a mux pattern to its Route.
	routes map[string]Route
	closed chan struct{}
	seed   int64

	// ctx ends in-flight deliveries on Close.
	ctx    context.Context
	cancel context.CancelFunc
	client *http.Client
	// bg counts delivery workers; Close waits for them.
	bg sync.WaitGroup

	// signMu guards the signing key and the cached callback token; it is
	// separate from mu because key generation is slow.
	signMu  sync.Mutex
	key     *rsa.PrivateKey
	kid     string
	cbToken string
	cbExp   time.Time

	mu       sync.Mutex
	srv      *http.Server
	url      string
	requests []Request
	// requestsDropped counts recorded requests dropped to keep the record
	// within its cap; maxRequests (0: maxRecorded) is that cap.
	requestsDropped int
	maxRequests     int
	scripts         map[Route][]Fault
	sticky          map[Route]*Fault
	calls           map[string]*callState
	order           []string // call ids in creation order
	tokens          map[string]issuedToken
	fetches         int
	issued          int
	// stopping is set by Close: no timer, worker or delivery starts after.
	stopping bool
	// tasks are the pending simulation steps, run by one timer.
	tasks     tasks
	taskByID  map[uint64]*task
	timer     *time.Timer
	nextTimer uint64
	// idRNG, faultRNG and serial are the seeded sources: ids, faults on
	// HTTP routes, and per-call streams.
	idRNG    *mrand.Rand
	faultRNG *mrand.Rand
	serial   uint64
	faults   map[FaultKind]*faultState
	outboxes map[string]*outbox
	stats    DeliveryStats
	sent     []Delivery
	// recordings are served at /emulator/recordings/{id}; recordingOrder
	// bounds them, oldest first.
	recordings     map[string]*recording
	recordingOrder []string
	// people are the scripts of PUT /emulator/people/{key}.
	people map[string]personScript

	closeOnce sync.Once
}

// withDefaults fills every Options field left at its zero value with the
// emulator's default, and draws a random Seed when none is given.
func (opts *Options) withDefaults() {
	if opts.TenantID == "" {
		opts.TenantID = DefaultTenantID
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	if opts.BotName == "" {
		opts.BotName = DefaultBotName
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.CallbackTokenTTL <= 0 {
		opts.CallbackTokenTTL = DefaultCallbackTokenTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DeliveryRetries == 0 {
		opts.DeliveryRetries = DefaultDeliveryRetries
	} else if opts.DeliveryRetries < 0 {
		opts.DeliveryRetries = 0
	}
	if opts.QueueLimit <= 0 {
		opts.QueueLimit = DefaultQueueLimit
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 1
	}
	opts.Timing.withDefaults()
	if opts.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.Seed = int64(binary.LittleEndian.Uint64(b[:]) >> 1)
		if opts.Seed == 0 {
			opts.Seed = 1
		}
	}
}

// New returns a Server that is not listening yet.
func New(opts Options) *Server {
	opts.withDefaults()
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithCancel(context.Background())
	seed := uint64(opts.Seed)
	s := &Server{
		opts:     opts,
		mux:      http.NewServeMux(),
		routes:   map[string]Route{},
		closed:   make(chan struct{}),
		seed:     opts.Seed,
		ctx:      ctx,
		cancel:   cancel,
		client:   client,
		key:      opts.SigningKey,
		scripts:  map[Route][]Fault{},
		sticky:   map[Route]*Fault{},
		calls:    map[string]*callState{},
		tokens:   map[string]issuedToken{},
		taskByID: map[uint64]*task{},
		idRNG:    mrand.New(mrand.NewPCG(seed, 0x1d5)),
		faultRNG: mrand.New(mrand.NewPCG(seed, 0xfa17)),
		faults:   map[FaultKind]*faultState{},
		outboxes: map[string]*outbox{},
	}
	for k, r := range opts.Faults {
		s.faults[k] = &faultState{rule: r}
	}
	if s.key != nil {
		s.kid = keyID(&s.key.PublicKey)
	}
	s.register()
	opts.Log.Info().Str("component", "emulator").Int64("seed", opts.Seed).Float64("time_scale", opts.TimeScale).
		Msg("emulator seed (set BOTD_EMULATOR_SEED to repeat this run)")
	return s
}

// Start returns a new Server already serving on a loopback port.
func Start(opts Options) (*Server, error) { return StartOn(opts, "127.0.0.1:0") }

// StartOn returns a new Server already serving on addr.
func StartOn(opts Options, addr string) (*Server, error) {
	s := New(opts)
	if err := s.listen(addr); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Run serves an emulator on addr (e.g. ":8089") until ctx ends, then
// closes it and waits for its goroutines. It returns an error only if it
// cannot listen.
func Run(ctx context.Context, opts Options, addr string) error {
	s := New(opts)
	defer s.Close()
	if err := s.listen(addr); err != nil {
		return err
	}
	opts.Log.Info().Str("component", "emulator").Str("addr", s.URL()).Str("graph_url", s.GraphURL()).
		Str("token_url", s.TokenURL()).Str("openid_configuration", s.OpenIDConfigURL()).
		Str("incoming", s.URL()+"/emulator/incoming").Msg("emulator listening")
	<-ctx.Done()
	return nil
}

// Start serves the emulator on a loopback port, like httptest.Server.Start:
// it panics if it cannot listen or was already started.
func (s *Server) Start() {
	if err := s.listen("127.0.0.1:0"); err != nil {
		panic(err)
	}
}

func (s *Server) listen(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return fmt.Errorf("emulator: already started")
	}
	if s.stopping {
		return fmt.Errorf("emulator: closed")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	host := ln.Addr().String()
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		host = net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
	}
	s.url = "http://" + host
	go func(srv *http.Server) { _ = srv.Serve(ln) }(s.srv)
	return nil
}

// Close stops the emulator: pending request delays end, scheduled
// simulation steps are cancelled, deliveries in flight are abandoned
// (waiting ones are counted as dropped), in-flight handlers return, the
// listener closes, and Close waits for every goroutine the emulator
// started. It is safe to call more than once, and on a server never
// started.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.mu.Lock()
		s.stopping = true
		if s.timer != nil {
			s.timer.Stop()
		}
		s.tasks, s.taskByID = nil, nil
		srv := s.srv
		s.mu.Unlock()
		s.cancel()
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
			cancel()
		}
		s.bg.Wait()
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

// OpenIDConfigURL is the OpenID configuration that names the JWKS the
// callbacks' JWTs verify against, like
// https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration.
func (s *Server) OpenIDConfigURL() string { return s.URL() + openIDPath }

// JWKSURL is the key set of the callbacks' JWTs.
func (s *Server) JWKSURL() string { return s.URL() + jwksPath }

// Options returns the options in effect (defaults applied, the seed
// chosen), e.g. to configure a client with the emulator's credentials.
func (s *Server) Options() Options { return s.opts }

// Seed returns the seed in effect: Options.Seed, or the one picked at
// random.
func (s *Server) Seed() int64 { return s.seed }

// Handler returns the emulator as an http.Handler, to mount without Start.
func (s *Server) Handler() http.Handler { return s }

// Script queues faults for route: each request to route takes the next one
// until the queue is empty. Scripted faults come before a sticky one and
// before injected ones (FaultThrottle, FaultUnavailable, FaultToken).
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

// nextFault pops the route's next scripted fault, or returns its sticky
// one, or an injected one. Callers hold no lock.
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
	return s.injectedFaultLocked(route)
}

// Requests returns the recorded requests, all of them or those to the
// given routes, in arrival order (the latest 10000).
func (s *Server) Requests(routes ...Route) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if len(routes) == 0 || slices.Contains(routes, r.Route) {
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

func cloneRequest(r Request) Request {
	r.Header = r.Header.Clone()
	r.Body = append([]byte(nil), r.Body...)
	return r
}

// recordCap is how many requests the record keeps.
func (s *Server) recordCap() int {
	if s.maxRequests > 0 {
		return s.maxRequests
	}
	return maxRecorded
}

// RequestsDropped counts the oldest recorded requests dropped to keep the
// record within its cap (10000).
func (s *Server) RequestsDropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requestsDropped
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

// Reset forgets recorded requests and deliveries and pending scripted
// faults; calls, injected-fault rules and counters stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.sent = nil
	clear(s.scripts)
	clear(s.sticky)
}

// PutCall stores a call as is, replacing one with the same id: an incoming
// call to answer, reject or redirect (state "incoming"), or any state a
// test needs. A call without id gets one. It returns the id. It posts no
// notification and starts no timer.
func (s *Server) PutCall(call model.Call) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if call.ID == "" {
		call.ID = s.newIDLocked()
	}
	if cs, ok := s.calls[call.ID]; ok {
		cs.call = call
		cs.ended = call.State == model.StateTerminated
		return call.ID
	}
	cs := s.newCallLocked(call, kindUnknown)
	cs.ended = call.State == model.StateTerminated
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
// no such call. It posts no notification.
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

// errClosed is returned by Incoming after Close.
var errClosed = errors.New("emulator: closed")

// newIDLocked returns a UUID from the seeded source: the same seed gives
// the same ids in the same order.
func (s *Server) newIDLocked() string {
	return uuid.Must(uuid.NewRandomFromReader(rngReader{s.idRNG})).String()
}

// rngReader reads bytes from a math/rand source, for seeded UUIDs.
type rngReader struct{ r *mrand.Rand }

func (x rngReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(x.r.Uint32())
	}
	return len(p), nil
}

// scaled applies Options.TimeScale.
func (s *Server) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.opts.TimeScale)
}

// step is Timing.Step, scaled.
func (s *Server) step() time.Duration { return s.scaled(s.opts.Timing.Step) }

// task is a scheduled simulation step.
type task struct {
	due   time.Time
	seq   uint64
	fn    func()
	index int // in the heap
}

// tasks is a min-heap by (due, seq): steps run in the order they are due,
// and steps due at the same instant in the order they were scheduled, so
// a call's flow never depends on how goroutines happen to be scheduled.
type tasks []*task

func (h tasks) Len() int { return len(h) }
func (h tasks) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h tasks) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *tasks) Push(x any) {
	t := x.(*task)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *tasks) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

// afterLocked runs fn, with s.mu held, once d (already scaled) has passed,
// unless the server closes first or the returned id is stopped. Callers
// hold s.mu.
func (s *Server) afterLocked(d time.Duration, fn func()) uint64 {
	if s.stopping {
		return 0
	}
	s.nextTimer++
	t := &task{due: time.Now().Add(max(d, 0)), seq: s.nextTimer, fn: fn}
	heap.Push(&s.tasks, t)
	s.taskByID[t.seq] = t
	s.rearmLocked()
	return t.seq
}

// stopTimerLocked cancels a pending step; 0 and spent ids are ignored.
// Callers hold s.mu.
func (s *Server) stopTimerLocked(id uint64) {
	t, ok := s.taskByID[id]
	if !ok {
		return
	}
	delete(s.taskByID, id)
	heap.Remove(&s.tasks, t.index)
}

// rearmLocked sets the one timer to the earliest due step. Callers hold
// s.mu.
func (s *Server) rearmLocked() {
	if len(s.tasks) == 0 || s.stopping {
		return
	}
	d := time.Until(s.tasks[0].due)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.fire)
		return
	}
	s.timer.Reset(d)
}

// fire runs every due step in order, including steps that those schedule
// for now.
func (s *Server) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return
	}
	now := time.Now()
	for len(s.tasks) > 0 && !s.tasks[0].due.After(now) && !s.stopping {
		t := heap.Pop(&s.tasks).(*task)
		delete(s.taskByID, t.seq)
		t.fn()
	}
	s.rearmLocked()
}
