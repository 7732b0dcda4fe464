package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	"github.com/botd/botd/internal/flows"
	"github.com/botd/botd/internal/gctune"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/handlers"
	"github.com/botd/botd/internal/journal"
	"github.com/botd/botd/internal/logbuf"
	"github.com/botd/botd/internal/notify"
)

// run is botd: it reads the config, resolves what it derives at start,
// builds every component, serves until ctx ends, then shuts down in order.
// It is the only place that knows every concrete type; tests call it
// directly on port 0. environ lists the environment, to warn of unknown
// BOTD_* variables; -h writes the usage to stdout.
func run(ctx context.Context, args []string, getenv func(string) string, environ func() []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "emulator" || args[0] == "version") {
		return subcommand(ctx, args, getenv, environ, stdout)
	}
	cfg, err := config.Load(args, getenv, stdout)
	var usage *config.UsageError
	if errors.Is(err, flag.ErrHelp) || errors.As(err, &usage) {
		return err
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// Every log line goes through one Writer, which counts failed writes;
	// json lines are held up to BOTD_LOG_FLUSH (console lines are for
	// people watching: written at once).
	flush := cfg.LogFlush
	if cfg.LogFormat != config.LogFormatJSON {
		flush = 0
	}
	lines := logbuf.New(stdout, flush, logBuffer)
	defer lines.Close() // last: after "botd stopped"
	log := newLogger(cfg, lines, isTerminal(stdout))
	warnUnknownEnv(log, environ)
	reg := prometheus.NewRegistry()
	reg.MustRegister(goCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "botd_log_write_failures_total", Help: "writes of log lines to stdout that failed"},
			func() float64 { return float64(lines.Failures()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "botd_log_lines_dropped_total", Help: "log lines lost to failed writes to stdout"},
			func() float64 { return float64(lines.Dropped()) }))

	st, err := resolve(log, &cfg)
	if err != nil {
		return err
	}
	defer st.close()
	logConfig(log, &cfg, st.rt)
	if tu := gctune.Start(uint64(cfg.GCHeapFloor)); tu != nil {
		defer tu.Stop()
		log.Info().Int64("gc_heap_floor", cfg.GCHeapFloor).Int("gc_percent", tu.GCPercent()).Msg("GC heap floor set: the collector runs at this heap size at the earliest")
	}

	// Background work lives until shutdown has drained everything.
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	a, err := build(bgCtx, log, &cfg, st, reg)
	if err != nil {
		return err
	}
	return serve(ctx, bgCtx, stopBG, log, &cfg, st.rt.CallbackURL(), a)
}

// subcommand runs "botd emulator" and "botd version".
func subcommand(ctx context.Context, args []string, getenv func(string) string, environ func() []string, stdout io.Writer) error {
	if args[0] == "emulator" {
		return runEmulator(ctx, args[1:], getenv, environ, stdout)
	}
	if len(args) > 1 {
		return &config.UsageError{Err: fmt.Errorf("version: unexpected arguments %q", args[1:])}
	}
	_, err := fmt.Fprintf(stdout, "botd %s (%s)\n", version, runtime.Version())
	return err
}

// started is what resolve brings up: the bound listeners, the values
// derived from them and the host, and the embedded emulator.
type started struct {
	publicLn, adminLn net.Listener
	rt                config.Runtime
	emu               *emulator.Server // nil unless in emulator mode
	flows             *flows.Set       // BOTD_FLOWS, loaded and checked; nil when unset
}

func (st *started) close() {
	if st.emu != nil {
		st.emu.Close()
	}
	if st.adminLn != nil {
		st.adminLn.Close()
	}
	st.publicLn.Close()
}

// resolve binds the listeners and derives the Runtime from them and the
// host name. In emulator mode (no credentials) Graph is botd's own
// emulator, in process and on loopback, started here: its callbacks are
// signed, and botd checks them as it would Graph's.
func resolve(log zerolog.Logger, cfg *config.Config) (_ *started, err error) {
	if cfg.Graph != "" {
		log.Info().Str("graph", cfg.Graph).Str("graph_url", cfg.GraphBaseURL).Str("auth_metadata_url", cfg.AuthMetadataURL).
			Msg("Graph is a standalone emulator (BOTD_GRAPH), not an embedded one")
	}
	if cfg.Emulator {
		log.Warn().Str("mode", "emulator").
			Msg("emulator mode: no Graph credentials set (BOTD_CLIENT_ID, BOTD_CLIENT_SECRET, BOTD_TENANT_ID), so botd talks to its embedded Graph emulator on loopback")
	}
	st := &started{}
	// A flow file that does not load stops botd before anything starts.
	if cfg.Flows != "" {
		if st.flows, err = flows.LoadPath(cfg.Flows, flowsConfig(cfg).Options()); err != nil {
			return nil, fmt.Errorf("BOTD_FLOWS: %w", err)
		}
		log.Info().Str("path", cfg.Flows).Int("flows", len(st.flows.Flows())).Msg("flows loaded")
	}
	if st.publicLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("BOTD_LISTEN: %w", err)
	}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	if st.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		return nil, fmt.Errorf("BOTD_ADMIN_LISTEN: %w", err)
	}
	if st.rt, err = cfg.Resolve(st.publicLn.Addr().(*net.TCPAddr).Port, os.Hostname); err != nil {
		return nil, err
	}
	if !cfg.Emulator {
		return st, nil
	}
	faults, err := emulator.ParseFaults(cfg.EmulatorFaults)
	if err != nil {
		return nil, fmt.Errorf("BOTD_EMULATOR_FAULTS: %w", err)
	}
	st.emu, err = emulator.StartOn(emulator.Options{
		TenantID: st.rt.TenantID, ClientID: st.rt.ClientID, ClientSecret: st.rt.ClientSecret,
		// A call's tenantId (Microsoft's examples name their own) gets a
		// token for that tenant, as a multi-tenant app's would.
		Tenants:        []string{emulator.AnyTenant},
		BotName:        cfg.BotName,
		BotCallbackURL: st.rt.WebhookURL(),
		Seed:           cfg.EmulatorSeed,
		TimeScale:      cfg.EmulatorTimeScale,
		Faults:         faults,
		Log:            log.With().Str("component", "emulator").Logger(),
	}, cfg.EmulatorListen)
	if err != nil {
		return nil, fmt.Errorf("BOTD_EMULATOR_LISTEN: start emulator: %w", err)
	}
	st.rt.UseEmulator(st.emu.GraphURL(), st.emu.TokenURL(), st.emu.OpenIDConfigURL())
	log.Info().Str("graph_url", st.rt.GraphBaseURL).Str("incoming", st.emu.URL()+"/emulator/incoming").
		Int64("seed", st.emu.Seed()).Msg("emulator serving")
	return st, nil
}

// graphConfig is the Graph client's config: graph's documented defaults
// (its one list of them) with every value botd's config has laid over
// them, so BOTD_GRAPH_MAX_RETRIES=0 is MaxRetries 0. Scope is left empty:
// the cloud's preset.
func graphConfig(cfg *config.Config, rt *config.Runtime) graph.Config {
	g := graph.DefaultConfig()
	g.Cloud, g.TenantID, g.ClientID, g.ClientSecret = cfg.Cloud, rt.TenantID, rt.ClientID, rt.ClientSecret
	g.ClientCertificateFile, g.FederatedTokenFile, g.MaxTenants = cfg.ClientCertificateFile, cfg.FederatedTokenFile, cfg.GraphMaxTenants
	g.BaseURL, g.TokenURL = rt.GraphBaseURL, rt.TokenURL
	g.RequestTimeout, g.RetryBudget, g.MaxRetries = cfg.GraphTimeout, cfg.GraphRetryBudget, cfg.GraphMaxRetries
	return g
}

// storeConfig is the call store's config: callstate's documented defaults
// with every value botd's config has laid over them.
func storeConfig(cfg *config.Config) callstate.Config {
	c := callstate.DefaultConfig()
	c.Retention, c.OperationTimeout, c.DeltaGapTimeout, c.MaxCalls = cfg.Retention, cfg.OperationTimeout, cfg.DeltaGapTimeout, cfg.MaxCalls
	return c
}

// flowsConfig is the flow engine's config: its documented defaults with
// botd's config laid over them.
func flowsConfig(cfg *config.Config) flows.Config {
	c := flows.DefaultConfig()
	c.Path, c.MaxRuns, c.DefaultTimeout, c.Workers = cfg.Flows, cfg.FlowMaxRuns, cfg.FlowWaitTimeout, cfg.Workers
	c.ActionTimeout = cfg.GraphRetryBudget + cfg.GraphTimeout
	return c
}

func anyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// app is botd built: its components and its two servers.
type app struct {
	store             *callstate.Store
	calls             *calls.Service
	engine            *automation.Engine
	flows             *flows.Engine
	metrics           *handlers.Metrics
	ready             *handlers.Readiness
	publicSrv         *http.Server
	adminSrv          *http.Server
	publicLn, adminLn net.Listener
	// journal and its writer are nil with BOTD_STATE=memory.
	journal    *journal.Journal
	writer     *journal.Writer
	recovering atomic.Bool // callbacks are deferred while set
}

// build wires every component from the config and the runtime.
func build(bgCtx context.Context, log zerolog.Logger, cfg *config.Config, st *started, reg *prometheus.Registry) (_ *app, err error) {
	rt := &st.rt
	gc, err := graph.New(graphConfig(cfg, rt), log, reg)
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}

	store, err := callstate.New(storeConfig(cfg), log, reg)
	if err != nil {
		return nil, fmt.Errorf("call store: %w", err)
	}
	a := &app{store: store, metrics: handlers.NewMetrics(reg), publicLn: st.publicLn, adminLn: st.adminLn}
	if cfg.State == config.StateJournal {
		// The journal opens before anything acts on the store, so that its
		// writer sees every change; a journal that cannot be opened stops
		// botd here.
		if a.journal, err = journal.Open(cfg.DataDir); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				a.journal.Close()
			}
		}()
		if from := a.journal.MigratedFrom(); from != 0 {
			log.Info().Str("path", a.journal.Path()).Int("from_schema", from).Int("schema", journal.SchemaVersion).Msg("journal migrated")
		}
		if frames, cut := a.journal.Replayed(); frames > 0 || cut > 0 {
			// botd stopped without its last checkpoint (kill -9, a crash):
			// what the log held is in the file now; a write cut short was
			// lost, as its callers were never told it was written.
			ev := log.Info()
			if cut > 0 {
				ev = log.Warn()
			}
			ev.Str("path", a.journal.Path()).Int("records", frames).Int64("cut_bytes", cut).Msg("journal log folded in after an unclean stop")
		}
		a.writer = journal.NewWriter(a.journal, store, journal.WriterConfig{
			Lag: cfg.JournalLag, HistoryRetention: cfg.HistoryRetention, CompactEvery: journalCompactEvery,
		}, log, reg)
	}
	// The one sender of outbound actions, for the admin API and automation.
	svc := calls.New(calls.Config{
		CallbackURL: rt.CallbackURL(), TenantID: rt.TenantID, BotAppID: rt.ClientID, BotName: cfg.BotName,
		// Recordings come from Graph's media servers: no redirects (the
		// bearer token must not follow one), bounded like a Graph request.
		Fetch:   &http.Client{Timeout: cfg.GraphTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Durable: a.durable(),
	}, gc, store, log)
	// Both engines observe the store: every change reaches them.
	engine, err := automation.New(automation.Config{
		KeepAlive:     cfg.KeepAliveInterval,
		Workers:       cfg.Workers,
		QueueSize:     cfg.QueueSize,
		ActionTimeout: cfg.GraphRetryBudget + cfg.GraphTimeout,
	}, svc, store, log, reg)
	if err != nil {
		return nil, fmt.Errorf("automation: %w", err)
	}
	// The Automation settings are the built-in flow's parameters.
	builtin, err := flows.Builtin(flowsConfig(cfg).Options(), map[string]any{
		"incomingAction": cfg.IncomingAction, "rejectReason": cfg.RejectReason, "redirectTarget": cfg.RedirectTarget,
		"invite": anyList(cfg.InviteTargets()), "inviteRetries": cfg.InviteRetries, "inviteBackoff": cfg.InviteRetryBackoff.String(),
	})
	if err != nil {
		return nil, err
	}
	fcfg := flowsConfig(cfg)
	if a.writer != nil {
		fcfg.OnRunChange = a.writer.MarkRun // runs in flight are kept with the calls
	}
	fe, err := flows.New(fcfg, st.flows, svc, store, log, reg)
	if err != nil {
		return nil, fmt.Errorf("flows: %w", err)
	}
	fe.SetBuiltin(builtin)

	sec, err := security(bgCtx, log, cfg, rt, reg)
	if err != nil {
		return nil, err
	}
	a.calls, a.engine, a.flows = svc, engine, fe
	a.ready = handlers.NewReadiness(func(ctx context.Context) error {
		if sec.verifier != nil && !sec.verifier.Ready() {
			return errors.New("the signing keys of Graph's callbacks are not loaded yet")
		}
		return gc.CheckToken(ctx)
	}, cfg.ReadyTimeout, a.metrics)
	buildServers(a, log, cfg, rt, sec, reg)
	return a, nil
}

// buildServers makes the public and admin servers of a.
func buildServers(a *app, log zerolog.Logger, cfg *config.Config, rt *config.Runtime, sec securityParts, reg *prometheus.Registry) {
	peers, _ := cfg.PeerMap() // validated by config.Load
	deps := handlers.Deps{
		Log: log, Decoder: notify.NewDecoder(notify.DefaultLimits()), Store: a.store, Calls: a.calls, Flows: a.flows,
		Metrics: a.metrics, Ready: a.ready, Gatherer: reg,
		CallbackPath: cfg.CallbackPath, MaxBody: cfg.MaxBody,
		RequestTimeout: cfg.GraphRetryBudget + cfg.GraphTimeout + 5*time.Second,
		Cluster: handlers.Cluster{
			Self:    rt.Instance,
			PeerURL: handlers.PeerURLFunc(peers, cfg.PeerDomain, rt.PeerPort),
			Client:  &http.Client{Timeout: cfg.ForwardTimeout},
		},
		CallbackAuth:  sec.callbackAuth,
		CallbackLimit: auth.Limit(cfg.MaxInflight, time.Second, reg),
		AdminAuth:     sec.adminAuth,
		MetricsOpen:   cfg.MetricsOpen,
		Pprof:         cfg.AdminPprof,
		Recovering:    &a.recovering,
	}
	if a.journal != nil {
		deps.History = a.writer
	}
	a.publicSrv = &http.Server{
		Handler:           handlers.Public(deps),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
	a.adminSrv = &http.Server{
		Handler:           handlers.Admin(deps),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      deps.RequestTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}

// serve runs a until ctx ends or a listener fails, then shuts it down.
// Its background work runs on bgCtx, which stopBG ends last.
func serve(ctx, bgCtx context.Context, stopBG context.CancelFunc, log zerolog.Logger, cfg *config.Config, callbackURL string, a *app) error {
	var bg sync.WaitGroup
	bg.Add(3)
	go func() { defer bg.Done(); _ = a.store.Run(bgCtx) }()
	go func() { defer bg.Done(); a.engine.Run(bgCtx) }()
	go func() { defer bg.Done(); a.flows.Run(bgCtx) }()
	if a.writer != nil {
		// The writer's last write is after everything else has stopped.
		bg.Add(1)
		go func() { defer bg.Done(); a.writer.Run(bgCtx) }()
		a.recovering.Store(true)
	}
	if cfg.Flows != "" {
		// SIGHUP reloads the flows; a file that does not load keeps the
		// flows loaded before (Reload logs why).
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		bg.Add(1)
		go func() {
			defer bg.Done()
			defer signal.Stop(hup)
			for {
				select {
				case <-bgCtx.Done():
					return
				case <-hup:
					_, _ = a.flows.Reload()
				}
			}
		}()
	}

	serveErr := make(chan error, 2)
	for _, s := range []struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}{{"public", a.publicSrv, a.publicLn}, {"admin", a.adminSrv, a.adminLn}} {
		log.Info().Str("component", "http").Str("listener", s.name).Str("addr", s.ln.Addr().String()).Msg("listening")
		go func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("%s listener: %w", s.name, err)
			}
		}()
	}
	runErr := recoverCalls(ctx, log, cfg, a)
	if runErr == nil {
		a.ready.Set(true)
		log.Info().Str("version", version).Str("callback_url", callbackURL).Msg("botd ready")
		select {
		case <-ctx.Done():
			log.Info().Msg("shutdown requested")
		case runErr = <-serveErr:
			log.Error().Err(runErr).Msg("listener failed; shutting down")
		}
	}
	// Readiness first, so no new call lands here; then, when draining,
	// keep serving the live calls until they end or the drain timeout
	// passes.
	a.ready.Set(false)
	if runErr == nil && cfg.DrainTimeout > 0 {
		drain(log, a.store, cfg.DrainTimeout, serveErr)
	}
	err := shutdown(a, cfg.ShutdownTimeout)
	stopBG()
	bg.Wait()
	if a.journal != nil {
		err = errors.Join(err, a.journal.Close())
	}
	if err != nil {
		log.Error().Err(err).Msg("shutdown incomplete")
		if runErr == nil {
			runErr = err
		}
	}
	log.Info().Msg("botd stopped")
	return runErr
}

// durable is the calls service's write-before-send to the journal; nil
// with BOTD_STATE=memory.
func (a *app) durable() func(callID string) bool {
	if a.writer == nil {
		return nil
	}
	return a.writer.WriteNow
}

// journalCompactEvery is the time between two compactions of the journal.
const journalCompactEvery = time.Hour

// recoveryWorkers is how many calls recovery refreshes from Graph at once.
const recoveryWorkers = 8

// recoverCalls puts the journal's calls and flow runs back and refreshes
// the live calls from Graph, while the listeners serve: callbacks are
// answered 503 with Retry-After until the calls are back (a load from
// disk), and readiness stays false until the refresh is done too. A
// journal that cannot be read stops botd.
func recoverCalls(ctx context.Context, log zerolog.Logger, cfg *config.Config, a *app) error {
	if a.writer == nil {
		return nil
	}
	defer a.recovering.Store(false)
	_, err := a.writer.Recover(ctx, a.store, a.calls, journal.RecoverConfig{
		Retention: cfg.Retention, Rate: cfg.RecoveryRate, Workers: recoveryWorkers, Timeout: cfg.RecoveryTimeout, Runs: a.flows,
		Restored: func() { a.recovering.Store(false) },
	})
	if err != nil && ctx.Err() == nil {
		log.Error().Err(err).Msg("recovery failed; shutting down")
		return err
	}
	return nil
}

// shutdown stops taking callbacks and finishes the in-flight ones, drains
// outbound work, and stops the admin listener, all within timeout.
func shutdown(a *app, timeout time.Duration) error {
	sdCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if err := a.publicSrv.Shutdown(sdCtx); err != nil {
		errs = append(errs, fmt.Errorf("public listener shutdown: %w", err))
	}
	if err := a.flows.Drain(sdCtx); err != nil {
		errs = append(errs, err)
	}
	a.engine.Close()
	if err := a.engine.Wait(sdCtx); err != nil {
		errs = append(errs, err)
	}
	if err := a.adminSrv.Shutdown(sdCtx); err != nil {
		errs = append(errs, fmt.Errorf("admin listener shutdown: %w", err))
	}
	return errors.Join(errs...)
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
func security(ctx context.Context, log zerolog.Logger, cfg *config.Config, rt *config.Runtime, reg prometheus.Registerer) (securityParts, error) {
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
	if rt.AuthMetadataURL != "" { // the config's, else the emulator's
		metadataURL = rt.AuthMetadataURL
	}
	if l := config.List(cfg.AuthIssuers); len(l) > 0 {
		issuers = l
	}
	// Auth's documented tunables, with what botd's config and runtime say.
	vc := auth.DefaultVerifierConfig()
	vc.Audience, vc.MetadataURL, vc.Issuers = rt.ClientID, metadataURL, issuers
	vc.AllowedTenants = config.List(cfg.AuthAllowedTenants)
	vc.OnVerified = func(r *http.Request, c *auth.Claims) { handlers.RecordTenant(r, c.TenantID) }
	v, err := auth.NewVerifier(vc, log, reg)
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

// goCollector is Go's default runtime metrics, and the heap the last
// collection found live (go_gc_heap_live_bytes): what botd's calls hold,
// without the garbage heap in use also counts.
func goCollector() prometheus.Collector {
	return collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)}))
}

// logBuffer is the most log output botd holds before writing it, when
// BOTD_LOG_FLUSH holds lines: a write of this size is one system call.
const logBuffer = 64 << 10

// newLogger logs to out; tty tells whether out ends at a terminal, where
// the console format is coloured.
func newLogger(cfg config.Config, out io.Writer, tty bool) zerolog.Logger {
	level, err := zerolog.ParseLevel(strings.ToLower(cfg.LogLevel))
	if err != nil {
		level = zerolog.InfoLevel
	}
	if cfg.LogFormat == config.LogFormatConsole {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339, NoColor: !tty}
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

// logConfig logs the effective config once, derived values in, secrets
// masked.
func logConfig(log zerolog.Logger, cfg *config.Config, rt config.Runtime) {
	eff := cfg.Effective(rt)
	m := eff.Masked()
	d := zerolog.Dict()
	for _, k := range config.SortedKeys(m) {
		d = d.Str(k, m[k])
	}
	log.Info().Dict("config", d).Bool("emulator", cfg.Emulator).Msg("effective config")
}
