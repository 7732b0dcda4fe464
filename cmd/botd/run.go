package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/auth"
	"github.com/botd/botd/internal/automation"
	"github.com/botd/botd/internal/calls"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/config"
	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/handlers"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/notify"
)

// run is botd: it reads the config, wires every component, serves until ctx
// ends, then shuts down in order. It is the only place that knows every
// concrete type; tests call it directly on port 0.
// environ lists the environment, to warn of unknown BOTD_* variables; -h
// writes the usage to stdout.
func run(ctx context.Context, args []string, getenv func(string) string, environ func() []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "emulator":
			return runEmulator(ctx, args[1:], getenv, environ, stdout)
		case "version":
			if len(args) > 1 {
				return &config.UsageError{Err: fmt.Errorf("version: unexpected arguments %q", args[1:])}
			}
			_, err := fmt.Fprintf(stdout, "botd %s (%s)\n", version, runtime.Version())
			return err
		}
	}
	cfg, err := config.Load(args, getenv, stdout)
	var usage *config.UsageError
	if errors.Is(err, flag.ErrHelp) || errors.As(err, &usage) {
		return err
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := newLogger(cfg, stdout)
	warnUnknownEnv(log, environ)
	return serve(ctx, cfg, log)
}

// serve runs botd with a loaded config until ctx ends, then shuts it down.
func serve(ctx context.Context, cfg config.Config, log zerolog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if cfg.Graph != "" {
		log.Info().Str("graph", cfg.Graph).Str("graph_url", cfg.GraphBaseURL).Str("auth_metadata_url", cfg.AuthMetadataURL).
			Msg("Graph is a standalone emulator (BOTD_GRAPH), not an embedded one")
	}
	if cfg.Emulator {
		log.Warn().Str("mode", "emulator").
			Msg("emulator mode: no Graph credentials set (BOTD_CLIENT_ID, BOTD_CLIENT_SECRET, BOTD_TENANT_ID), so botd talks to its embedded Graph emulator on loopback")
	}

	publicLn, adminLn, err := listen(&cfg)
	if err != nil {
		return err
	}
	defer publicLn.Close()
	defer adminLn.Close()
	emu, err := startEmulator(&cfg, log)
	if err != nil {
		return err
	}
	if emu != nil {
		defer emu.Close()
	}
	logConfig(log, &cfg)

	c, err := newCore(&cfg, log, reg)
	if err != nil {
		return err
	}
	// Background work lives until shutdown has drained everything.
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	sec, err := security(bgCtx, log, &cfg, emu, reg)
	if err != nil {
		return err
	}
	srv := newServers(&cfg, log, reg, c, sec)

	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); _ = c.store.Run(bgCtx) }()
	go func() { defer bg.Done(); c.engine.Run(bgCtx) }()

	serveErr := make(chan error, 2)
	for _, s := range []struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}{{"public", srv.public, publicLn}, {"admin", srv.admin, adminLn}} {
		log.Info().Str("component", "http").Str("listener", s.name).Str("addr", s.ln.Addr().String()).Msg("listening")
		go func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("%s listener: %w", s.name, err)
			}
		}()
	}
	srv.ready.Set(true)
	log.Info().Str("version", version).Str("callback_url", cfg.CallbackURL()).Msg("botd ready")

	var runErr error
	select {
	case <-ctx.Done():
		log.Info().Msg("shutdown requested")
	case runErr = <-serveErr:
		log.Error().Err(runErr).Msg("listener failed; shutting down")
	}

	if err := srv.shutdown(log, &cfg, c, runErr == nil, serveErr); err != nil && runErr == nil {
		runErr = err
	}
	stopBG()
	bg.Wait()
	log.Info().Msg("botd stopped")
	return runErr
}

// listen opens the public and admin listeners, and settles what depends on
// the public port: the default public URL, instance name and peer port.
func listen(cfg *config.Config) (publicLn, adminLn net.Listener, err error) {
	publicLn, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("BOTD_LISTEN: %w", err)
	}
	adminLn, err = net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		publicLn.Close()
		return nil, nil, fmt.Errorf("BOTD_ADMIN_LISTEN: %w", err)
	}
	fail := func(err error) (net.Listener, net.Listener, error) {
		publicLn.Close()
		adminLn.Close()
		return nil, nil, err
	}
	publicPort := publicLn.Addr().(*net.TCPAddr).Port
	if cfg.PublicURL == "" {
		cfg.PublicURL = fmt.Sprintf("http://127.0.0.1:%d", publicPort)
	}
	if cfg.Instance == "" {
		host, err := os.Hostname()
		if err != nil {
			return fail(fmt.Errorf("BOTD_INSTANCE: not set, and no host name: %w", err))
		}
		cfg.Instance = config.InstanceName(host)
		if err := cfg.Validate(); err != nil {
			return fail(fmt.Errorf("BOTD_INSTANCE: not set, and the host name %q is not a DNS label; set it: %w", host, err))
		}
	}
	if cfg.PeerPort == 0 {
		cfg.PeerPort = publicPort
	}
	return publicLn, adminLn, nil
}

// startEmulator starts the embedded emulator in emulator mode (else it
// returns nil): no credentials, so Graph is botd's own emulator, in process
// and on loopback. Its callbacks are signed, and botd checks them as it
// would Graph's.
func startEmulator(cfg *config.Config, log zerolog.Logger) (*emulator.Server, error) {
	if !cfg.Emulator {
		return nil, nil
	}
	cfg.TenantID = "00000000-0000-4000-8000-000000000001"
	cfg.ClientID = "00000000-0000-4000-8000-000000000002"
	cfg.ClientSecret = randomSecret()
	faults, err := emulator.ParseFaults(cfg.EmulatorFaults)
	if err != nil {
		return nil, fmt.Errorf("BOTD_EMULATOR_FAULTS: %w", err)
	}
	emu, err := emulator.StartOn(emulator.Options{
		TenantID: cfg.TenantID, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		// A call's tenantId (Microsoft's examples name their own) gets
		// a token for that tenant, as a multi-tenant app's would.
		Tenants: []string{emulator.AnyTenant},
		BotName: cfg.BotName,
		// Incoming calls ring the bot's registered webhook: the
		// callback path with no instance, as Teams would.
		BotCallbackURL: strings.TrimRight(cfg.PublicURL, "/") + cfg.CallbackPath,
		Seed:           cfg.EmulatorSeed,
		TimeScale:      cfg.EmulatorTimeScale,
		Faults:         faults,
		Log:            log.With().Str("component", "emulator").Logger(),
	}, cfg.EmulatorListen)
	if err != nil {
		return nil, fmt.Errorf("BOTD_EMULATOR_LISTEN: start emulator: %w", err)
	}
	cfg.GraphBaseURL, cfg.TokenURL = emu.GraphURL(), emu.TokenURL()
	log.Info().Str("graph_url", cfg.GraphBaseURL).Str("incoming", emu.URL()+"/emulator/incoming").
		Int64("seed", emu.Seed()).Msg("emulator serving")
	return emu, nil
}

// core is botd's inside: the Graph client, the call store, the calls
// service (the one sender of outbound actions) and automation.
type core struct {
	graph  *graph.Client
	store  *callstate.Store
	calls  *calls.Service
	engine *automation.Engine
}

// newCore builds the core; the store reports every change to automation.
func newCore(cfg *config.Config, log zerolog.Logger, reg *prometheus.Registry) (*core, error) {
	gc, err := graph.New(graph.Config{
		Cloud: cfg.Cloud, TenantID: cfg.TenantID, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		ClientCertificateFile: cfg.ClientCertificateFile, FederatedTokenFile: cfg.FederatedTokenFile, MaxTenants: cfg.GraphMaxTenants,
		BaseURL: cfg.GraphBaseURL, TokenURL: cfg.TokenURL,
		RequestTimeout: cfg.GraphTimeout, RetryBudget: cfg.GraphRetryBudget, MaxRetries: cfg.GraphMaxRetries,
	}, log, reg)
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}

	var engine *automation.Engine
	store, err := callstate.New(callstate.Config{
		Retention:        cfg.Retention,
		OperationTimeout: cfg.OperationTimeout,
		DeltaGapTimeout:  cfg.DeltaGapTimeout,
		MaxCalls:         cfg.MaxCalls,
		// Every change, from a notification, from botd's own requests or
		// from a timer, reaches automation through here.
		Sink: func(c []callstate.Change) { engine.Handle(c) },
	}, log, reg)
	if err != nil {
		return nil, fmt.Errorf("call store: %w", err)
	}
	var invitees []model.InvitationParticipantInfo
	for _, t := range cfg.InviteTargets() {
		invitees = append(invitees, automation.TargetFor(t))
	}
	// The one sender of outbound actions, for the admin API and automation.
	svc := calls.New(calls.Config{
		CallbackURL: cfg.CallbackURL(), TenantID: cfg.TenantID, BotAppID: cfg.ClientID, BotName: cfg.BotName,
	}, gc, store, log)
	engine = automation.New(automation.Config{
		IncomingAction:    cfg.IncomingAction,
		RejectReason:      cfg.RejectReason,
		RedirectTarget:    cfg.RedirectTarget,
		InviteOnEstablish: invitees,
		InviteRetries:     cfg.InviteRetries,
		InviteBackoff:     cfg.InviteRetryBackoff,
		KeepAlive:         cfg.KeepAliveInterval,
		Workers:           cfg.Workers,
		QueueSize:         cfg.QueueSize,
		ActionTimeout:     cfg.GraphRetryBudget + cfg.GraphTimeout,
	}, svc, store, log, reg)

	return &core{graph: gc, store: store, calls: svc, engine: engine}, nil
}

// servers are botd's two HTTP servers and its readiness.
type servers struct {
	public, admin *http.Server
	ready         *handlers.Readiness
}

// newServers builds the public and admin servers over the core.
func newServers(cfg *config.Config, log zerolog.Logger, reg *prometheus.Registry, c *core, sec securityParts) *servers {
	peers, _ := cfg.PeerMap() // validated by config.Load
	metrics := handlers.NewMetrics(reg)
	ready := handlers.NewReadiness(func(ctx context.Context) error {
		if sec.verifier != nil && !sec.verifier.Ready() {
			return errors.New("the signing keys of Graph's callbacks are not loaded yet")
		}
		return c.graph.CheckToken(ctx)
	}, cfg.ReadyTimeout, metrics)
	deps := handlers.Deps{
		Log: log, Decoder: notify.NewDecoder(notify.DefaultLimits()), Store: c.store, Calls: c.calls,
		Metrics: metrics, Ready: ready, Gatherer: reg,
		CallbackPath: cfg.CallbackPath, MaxBody: cfg.MaxBody,
		RequestTimeout: cfg.GraphRetryBudget + cfg.GraphTimeout + 5*time.Second,
		Cluster: handlers.Cluster{
			Self:    cfg.Instance,
			PeerURL: handlers.PeerURLFunc(peers, cfg.PeerDomain, cfg.PeerPort),
			Client:  &http.Client{Timeout: cfg.ForwardTimeout},
		},
		CallbackAuth:  sec.callbackAuth,
		CallbackLimit: auth.Limit(cfg.MaxInflight, time.Second, reg),
		AdminAuth:     sec.adminAuth,
		MetricsOpen:   cfg.MetricsOpen,
	}
	publicSrv := &http.Server{
		Handler:           handlers.Public(deps),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
	adminSrv := &http.Server{
		Handler:           handlers.Admin(deps),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      deps.RequestTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}

	return &servers{public: publicSrv, admin: adminSrv, ready: ready}
}

// shutdown stops botd in order: readiness first, so no new call lands
// here; then, when draining, keep serving the live calls until they end or
// the drain timeout passes; then stop taking callbacks and finish the
// in-flight ones, drain outbound work, and stop the admin listener. It
// drains only when mayDrain (no listener failed). An incomplete shutdown
// is logged and returned.
func (s *servers) shutdown(log zerolog.Logger, cfg *config.Config, c *core, mayDrain bool, serveErr <-chan error) error {
	s.ready.Set(false)
	if mayDrain && cfg.DrainTimeout > 0 {
		drain(log, c.store, cfg.DrainTimeout, serveErr)
	}
	sdCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := s.public.Shutdown(sdCtx); err != nil {
		errs = append(errs, fmt.Errorf("public listener shutdown: %w", err))
	}
	c.engine.Close()
	if err := c.engine.Wait(sdCtx); err != nil {
		errs = append(errs, err)
	}
	if err := s.admin.Shutdown(sdCtx); err != nil {
		errs = append(errs, fmt.Errorf("admin listener shutdown: %w", err))
	}
	err := errors.Join(errs...)
	if err != nil {
		log.Error().Err(err).Msg("shutdown incomplete")
	}
	return err
}

// securityParts are the authentication middlewares botd runs with.
type securityParts struct {
	verifier     *auth.Verifier
	callbackAuth func(http.Handler) http.Handler
	adminAuth    func(http.Handler) http.Handler
}

// security builds inbound callback authentication and the admin token
// check from the config. In emulator mode the callbacks are still checked,
// against the emulator's own signing keys.
func security(ctx context.Context, log zerolog.Logger, cfg *config.Config, emu *emulator.Server, reg prometheus.Registerer) (securityParts, error) {
	var sec securityParts
	if cfg.AdminToken != "" {
		mw, err := auth.NewAdminAuth(cfg.AdminToken, log, reg)
		if err != nil {
			return sec, fmt.Errorf("BOTD_ADMIN_TOKEN: %w", err)
		}
		sec.adminAuth = mw
	} else {
		log.Warn().Str("addr", cfg.AdminListen).Msg("admin API open without a token: it is on loopback only; set BOTD_ADMIN_TOKEN to require one")
	}
	if cfg.InboundAuth == "off" {
		auth.RegisterDisabledGauge(reg)
		log.Warn().Msg("inbound authentication is OFF: anyone who can reach the callback can forge Graph notifications (allowed only on loopback or in emulator mode)")
		return sec, nil
	}
	metadataURL, issuers, err := auth.Preset(cfg.Cloud)
	if err != nil {
		return sec, fmt.Errorf("BOTD_CLOUD: %w", err)
	}
	if emu != nil {
		metadataURL = emu.OpenIDConfigURL()
	}
	if cfg.AuthMetadataURL != "" {
		metadataURL = cfg.AuthMetadataURL
	}
	if l := config.List(cfg.AuthIssuers); len(l) > 0 {
		issuers = l
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{
		Audience:       cfg.ClientID,
		MetadataURL:    metadataURL,
		Issuers:        issuers,
		AllowedTenants: config.List(cfg.AuthAllowedTenants),
		OnVerified:     func(r *http.Request, c *auth.Claims) { handlers.RecordTenant(r, c.TenantID) },
	}, log, reg)
	if err != nil {
		return sec, fmt.Errorf("inbound auth: %w", err)
	}
	// A failed first load is not fatal: the verifier keeps trying, and
	// botd stays unready (and refuses callbacks) until keys are loaded.
	if err := v.Start(ctx); err != nil {
		log.Error().Err(err).Str("metadata_url", metadataURL).Msg("Graph's callback signing keys could not be loaded; retrying, and not ready until they are")
	}
	sec.verifier, sec.callbackAuth = v, v.Middleware
	return sec, nil
}

// drain waits until no call is live, the timeout passes, or a listener
// fails.
func drain(log zerolog.Logger, store *callstate.Store, timeout time.Duration, serveErr <-chan error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		live := store.Live()
		if live == 0 {
			log.Info().Msg("drained: no live calls")
			return
		}
		log.Info().Int("live_calls", live).Dur("timeout", timeout).Msg("draining: waiting for live calls to end")
		select {
		case <-deadline.C:
			log.Warn().Int("live_calls", store.Live()).Msg("drain timeout passed with calls still live; shutting down")
			return
		case err := <-serveErr:
			log.Error().Err(err).Msg("listener failed while draining")
			return
		case <-tick.C:
		}
	}
}

func newLogger(cfg config.Config, out io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(strings.ToLower(cfg.LogLevel))
	if err != nil {
		level = zerolog.InfoLevel
	}
	if cfg.LogFormat == "console" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339, NoColor: !isTerminal(out)}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Str("service", "botd").Logger()
}

// isTerminal reports whether w is a terminal, where colours are wanted.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// knownEnv is every BOTD_* variable botd and botd emulator read.
func knownEnv() []string {
	known := config.KnownEnv()
	fs, _ := emulatorFlags()
	fs.VisitAll(func(f *flag.Flag) {
		env := emulatorEnvPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		known = append(known, env)
		if emulatorSecrets[f.Name] {
			known = append(known, env+"_FILE")
		}
	})
	return known
}

// warnUnknownEnv logs each BOTD_* variable that nothing reads, as a typo
// would be.
func warnUnknownEnv(log zerolog.Logger, environ func() []string) {
	if environ == nil {
		return
	}
	for _, w := range config.UnknownEnv(environ(), knownEnv()) {
		log.Warn().Msg(w)
	}
}

// logConfig logs the effective config once, secrets masked.
func logConfig(log zerolog.Logger, cfg *config.Config) {
	m := cfg.Masked()
	d := zerolog.Dict()
	for _, k := range config.SortedKeys(m) {
		d = d.Str(k, m[k])
	}
	log.Info().Dict("config", d).Bool("emulator", cfg.Emulator).Msg("effective config")
}

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
