// Package config owns botd's one configuration struct: its defaults, how it is
// read from flags and BOTD_* environment variables (secrets also from
// *_FILE), its validation at start, and its masked form for the log; and the
// Runtime, the values botd derives at start from a validated Config without
// changing it. It knows nothing of how the values are used.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/problem"
)

// EnvPrefix is the prefix of every environment variable botd reads.
const EnvPrefix = "BOTD_"

// Config is every setting botd has. Each field is a flag and an environment
// variable: flag "admin-listen" is BOTD_ADMIN_LISTEN.
type Config struct {
	// Listeners and paths.
	Listen       string // public listener: callback + /livez
	AdminListen  string // admin listener: admin API, /metrics, /livez, /readyz
	CallbackPath string
	PublicURL    string // scheme://host[:port] Graph reaches botd on
	MaxBody      int64

	ShutdownTimeout time.Duration
	ReadyTimeout    time.Duration

	// Replicas. Each call is owned by the replica that created or answered
	// it; its callbackUri ends in that replica's instance name.
	Instance       string        // this replica's name (default: the host name, the pod name in Kubernetes)
	PeerDomain     string        // DNS domain of the headless peer service; empty means one replica
	PeerPort       int           // public port of the peers (default: this replica's public port)
	Peers          string        // static instance=URL list, instead of or besides PeerDomain
	ForwardTimeout time.Duration // deadline of one forwarded notification
	DrainTimeout   time.Duration // on SIGTERM, how long live calls may go on before botd exits

	LogLevel  string
	LogFormat string
	LogFlush  time.Duration // the longest an info line waits in the log buffer; 0: unbuffered

	GCHeapFloor int64 // the heap goal the Go GC is kept at or above, in bytes; 0: GOGC alone

	// Graph client.
	Cloud        string
	TenantID     string
	ClientID     string // the bot's app id
	ClientSecret string
	// ClientCertificateFile and FederatedTokenFile are the credentials
	// without a secret: exactly one of the three is set.
	ClientCertificateFile string
	FederatedTokenFile    string
	GraphMaxTenants       int
	Graph                 string // emulator:<URL>: a standalone "botd emulator" is Graph
	GraphBaseURL          string
	TokenURL              string
	GraphTimeout          time.Duration
	GraphRetryBudget      time.Duration
	GraphMaxRetries       int
	BotName               string

	// Call store.
	Retention        time.Duration
	OperationTimeout time.Duration
	DeltaGapTimeout  time.Duration
	MaxCalls         int

	// State: the journal that calls survive a restart in.
	State            string        // journal or memory
	DataDir          string        // the journal's directory
	HistoryRetention time.Duration // how long ended calls stay in the journal
	JournalLag       time.Duration // the longest a change waits before it is written
	RecoveryRate     float64       // Graph requests per second while recovering at start
	RecoveryTimeout  time.Duration // the longest recovery refreshes calls from Graph before botd turns ready

	// Security.
	InboundAuth        string // on or off
	AuthMetadataURL    string // OpenID configuration listing Graph's signing keys
	AuthIssuers        string // comma list of accepted iss values
	AuthAllowedTenants string // comma list; empty accepts any tenant
	AdminToken         string
	MetricsOpen        bool // /metrics without the admin token
	AdminPprof         bool // /debug/pprof/ on the admin listener
	MaxInflight        int  // concurrent callbacks; over it 503

	// Automation.
	IncomingAction     string // answer, reject, redirect, ignore
	RejectReason       string
	RedirectTarget     string // phone number (E.164) or user id for redirect
	InviteOnEstablish  string // comma list of targets: +E164 phone numbers or user object ids
	InviteRetries      int
	InviteRetryBackoff time.Duration
	KeepAliveInterval  time.Duration
	Workers            int
	QueueSize          int

	// Flows.
	Flows           string // a flow file or a directory of them; "" runs the built-in flow only
	FlowMaxRuns     int
	FlowWaitTimeout time.Duration

	// Emulator mode (no credentials).
	EmulatorListen    string  // the emulator's address (Graph, token, /emulator/incoming)
	EmulatorSeed      int64   // 0: random, logged
	EmulatorTimeScale float64 // multiplies every emulator delay
	EmulatorFaults    string  // kind=probability[/next],... injected faults

	// Emulator reports whether botd runs against its embedded fake Graph
	// (no credentials given). It is derived, not set.
	Emulator bool
}

// setting describes one field: its flag name, typed default and help, the
// area of botd it belongs to (which groups it in the usage text), and a
// pointer to the field in the Config the table was built for.
type setting struct {
	name, usage, area string
	def, ptr          any // a T and a *T, T one of the types of settingType
	// secret settings may also be read from BOTD_<NAME>_FILE and are
	// masked when logged.
	secret bool
}

type settingType interface {
	string | int | int64 | bool | float64 | time.Duration
}

// opt is one setting of type T: its default and its field agree by type.
func opt[T settingType](name string, def T, usage string, p *T) setting {
	return setting{name: name, usage: usage, def: def, ptr: p}
}

// bind registers the setting as a flag of fs, setting its field to the
// default.
func (st setting) bind(fs *flag.FlagSet) {
	switch p := st.ptr.(type) {
	case *string:
		fs.StringVar(p, st.name, st.def.(string), st.usage)
	case *int:
		fs.IntVar(p, st.name, st.def.(int), st.usage)
	case *int64:
		fs.Int64Var(p, st.name, st.def.(int64), st.usage)
	case *bool:
		fs.BoolVar(p, st.name, st.def.(bool), st.usage)
	case *float64:
		fs.Float64Var(p, st.name, st.def.(float64), st.usage)
	case *time.Duration:
		fs.DurationVar(p, st.name, st.def.(time.Duration), st.usage)
	}
}

// value is the field's value as its flag prints it.
func (st setting) value() string { return format(reflect.ValueOf(st.ptr).Elem().Interface()) }

// format prints a setting's value the way package flag does.
func format(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// BOTD_LOG_FORMAT's values: JSON lines, or zerolog's console format for
// people.
const (
	LogFormatJSON    = "json"
	LogFormatConsole = "console"
)

// BOTD_STATE's values: calls kept in the journal, or in memory only.
const (
	StateJournal = "journal"
	StateMemory  = "memory"
)

// The enumerations botd's settings take, each the one list of its values.
var (
	LogLevels       = []string{"debug", "info", "warn", "error"}
	LogFormats      = []string{LogFormatJSON, LogFormatConsole}
	IncomingActions = []string{"answer", "reject", "redirect", "ignore"}
	States          = []string{StateJournal, StateMemory}
	RejectReasons   = model.RejectReasons
)

// FaultsUsage tells the form of BOTD_EMULATOR_FAULTS and botd emulator's
// -faults, with every kind of emulator.FaultKinds.
var FaultsUsage = "as kind=probability or kind=probability/next, comma separated; kinds: " + commaList(emulator.FaultKinds)

// orList writes a list as "a, b or c".
func orList[T ~string](l []T) string {
	s := make([]string, len(l))
	for i, v := range l {
		s[i] = string(v)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// commaList writes a list as "a, b, c".
func commaList[T ~string](l []T) string {
	s := make([]string, len(l))
	for i, v := range l {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// settings is the one table of botd's settings, bound to a fresh Config.
func settings() []setting { return table(new(Config)) }

// table lists every setting, in usage order, bound to c's fields.
func table(c *Config) []setting {
	secret := func(st setting) setting { st.secret = true; return st }
	var out []setting
	area := func(name string, sts ...setting) {
		for _, st := range sts {
			st.area = name
			out = append(out, st)
		}
	}
	area("Listeners",
		opt("listen", ":8080", "public listener address (Graph callbacks, /livez)", &c.Listen),
		opt("admin-listen", "127.0.0.1:9090", "admin listener address (admin API, /metrics, /livez, /readyz)", &c.AdminListen),
		opt("callback-path", "/api/calls", "path Graph posts notifications to", &c.CallbackPath),
		opt("public-url", "", "URL Graph reaches botd on, e.g. https://bot.contoso.com (default: http://127.0.0.1:<port> in emulator mode and with BOTD_GRAPH)", &c.PublicURL),
		opt("max-body", 1<<20, "largest callback body accepted, in bytes", &c.MaxBody),
		opt("shutdown-timeout", 15*time.Second, "time to finish in-flight callbacks and outbound work on SIGTERM", &c.ShutdownTimeout),
		opt("ready-timeout", 2*time.Second, "time /readyz may spend checking a Graph token", &c.ReadyTimeout))
	area("Replicas",
		opt("instance", "", "this replica's instance name, a DNS label (default: the host name, which is the pod name under a StatefulSet)", &c.Instance),
		opt("peer-domain", "", "DNS domain of the headless Service of the replicas, e.g. botd-peers.calls.svc.cluster.local; a notification for another instance's call is forwarded to {instance}.{peer-domain}. Empty: one replica, no forwarding", &c.PeerDomain),
		opt("peers", "", "static peer list, instance=http://host:port comma separated, for replicas without a headless Service (it wins over BOTD_PEER_DOMAIN)", &c.Peers),
		opt("peer-port", 0, "public port of the peer replicas (default: this replica's public port)", &c.PeerPort),
		opt("forward-timeout", 5*time.Second, "deadline of one notification forwarded to its owner replica", &c.ForwardTimeout),
		opt("drain-timeout", 0, "on SIGTERM, how long botd keeps serving its live calls (readiness false) before it shuts down; 0 shuts down at once", &c.DrainTimeout))
	area("Logging",
		opt("log-level", "info", orList(LogLevels), &c.LogLevel),
		opt("log-format", LogFormatJSON, orList(LogFormats), &c.LogFormat),
		opt("log-flush", 100*time.Millisecond, "json format: the longest a line at info or debug waits in botd's buffer before it is written, in one write with the others of that time (a warn or error line is written at once, with those before it); 0 writes each line as it is logged", &c.LogFlush))
	area("Go runtime",
		opt("gc-heap-floor", int64(32<<20), "the heap size in bytes below which the Go garbage collector does not run: after each collection botd raises the GC percent so that the next one comes at this size at the earliest, which spares a small heap many collections a second under load; above half of it GOGC rules alone, and GOMEMLIMIT always wins. 0 leaves GOGC alone", &c.GCHeapFloor))

	area("Graph",
		opt("cloud", "global", "Graph cloud preset: global, usgov (L4) or dod (L5)", &c.Cloud),
		opt("tenant-id", "", "Azure AD tenant id of the bot's app registration", &c.TenantID),
		opt("client-id", "", "the bot's app (client) id", &c.ClientID),
		secret(opt("client-secret", "", "the bot's client secret (or BOTD_CLIENT_SECRET_FILE)", &c.ClientSecret)),
		opt("client-certificate-file", "", "PEM file with the bot's certificate and its RSA private key: token requests carry a client assertion signed with it, instead of a client secret", &c.ClientCertificateFile),
		opt("federated-token-file", "", "file holding a federated token (Azure workload identity projects one and names it in AZURE_FEDERATED_TOKEN_FILE, the default when no other credential is set), read on each token request, instead of a client secret", &c.FederatedTokenFile),
		opt("graph-max-tenants", 100, "tenants whose Graph tokens are cached at once; each call is acted on with a token for its own tenant (BOTD_TENANT_ID for calls botd creates without one)", &c.GraphMaxTenants),
		opt("graph", "", "point botd at a standalone Graph emulator (botd emulator) instead of Graph: emulator:<URL>, e.g. emulator:http://127.0.0.1:7070; sets the Graph, token and signing-key URLs and the emulator's tenant, client id and secret, each unless set", &c.Graph),
		opt("graph-base-url", "", "Graph base URL; overrides the cloud preset", &c.GraphBaseURL),
		opt("token-url", "", "OAuth2 token URL; overrides the cloud preset", &c.TokenURL),
		opt("graph-timeout", 10*time.Second, "deadline of one Graph request attempt", &c.GraphTimeout),
		opt("graph-retry-budget", 30*time.Second, "total time one Graph call may spend retrying", &c.GraphRetryBudget),
		opt("graph-max-retries", 4, "retries of one Graph call on 429/503/504", &c.GraphMaxRetries),
		opt("bot-name", "botd", "display name of the bot in create-call source identities", &c.BotName))

	area("Call store",
		opt("retention", callstate.DefaultRetention, "how long terminated calls stay visible before they are swept", &c.Retention),
		opt("operation-timeout", callstate.DefaultOperationTimeout, "an operation with no result after this is failed with reason timeout", &c.OperationTimeout),
		opt("delta-gap-timeout", callstate.DefaultDeltaGapTimeout, "a delta-roster gap not filled by then triggers a roster resync", &c.DeltaGapTimeout),
		opt("max-calls", callstate.DefaultMaxCalls, "most calls tracked at once; a new call over it is refused", &c.MaxCalls))
	area("State",
		opt("state", StateJournal, "where calls are kept: journal (a file in BOTD_DATA_DIR; calls survive a restart) or memory (lost when botd stops)", &c.State),
		opt("data-dir", "data", "directory of the journal: the file botd.journal and its log botd.journal.log.<generation> (the image sets /var/lib/botd)", &c.DataDir),
		opt("history-retention", 30*24*time.Hour, "how long an ended call stays in the journal, after it has left memory, before compaction deletes it", &c.HistoryRetention),
		opt("journal-lag", 50*time.Millisecond, "the longest a change to a call waits before it is written to the journal, in one batch with the others of that time", &c.JournalLag),
		opt("recovery-rate", 50.0, "Graph requests per second at most while botd refreshes its calls at start (each call takes two)", &c.RecoveryRate),
		opt("recovery-timeout", 2*time.Minute, "the longest botd refreshes its calls from Graph at start, callbacks deferred meanwhile; the calls not refreshed by then are kept as the journal had them", &c.RecoveryTimeout))

	area("Security",
		opt("inbound-auth", "on", "authenticate Graph callbacks (on, or off: allowed only for a loopback public listener or in emulator mode)", &c.InboundAuth),
		opt("auth-metadata-url", "", "OpenID configuration whose jwks_uri lists the keys Graph signs callbacks with (default: the cloud's preset; the emulator's in emulator mode)", &c.AuthMetadataURL),
		opt("auth-issuers", "", "comma list of accepted callback token issuers (default: the cloud's preset)", &c.AuthIssuers),
		opt("auth-allowed-tenants", "", "comma list of tenant ids whose callbacks are accepted (default: any tenant; the token must name one)", &c.AuthAllowedTenants),
		secret(opt("admin-token", "", "bearer token the admin API requires (or BOTD_ADMIN_TOKEN_FILE); required when the admin listener is not on loopback", &c.AdminToken)),
		opt("metrics-open", true, "serve /metrics without the admin token, for scrapers", &c.MetricsOpen),
		opt("admin-pprof", false, "serve Go's runtime profiles (CPU, heap, goroutines) under /debug/pprof/ on the admin listener, behind the admin token", &c.AdminPprof),
		opt("max-inflight", 256, "callbacks handled at once; more get 503 with Retry-After", &c.MaxInflight))
	area("Automation",
		opt("incoming-action", "answer", "what botd does with an incoming call: "+orList(IncomingActions), &c.IncomingAction),
		opt("reject-reason", "busy", "reject reason when incoming-action=reject: "+orList(RejectReasons), &c.RejectReason),
		opt("redirect-target", "", "E.164 number or user id incoming calls are redirected to when incoming-action=redirect", &c.RedirectTarget),
		opt("invite-on-establish", "", "comma list of E.164 numbers or user ids invited when a call becomes established", &c.InviteOnEstablish),
		opt("invite-retries", 2, "times a failed automatic invite is retried", &c.InviteRetries),
		opt("invite-retry-backoff", 2*time.Second, "first wait before retrying a failed invite (doubles each time)", &c.InviteRetryBackoff),
		opt("keepalive-interval", 15*time.Minute, "keepAlive period for established calls (Graph ends calls after 45m without one)", &c.KeepAliveInterval),
		opt("workers", 8, "workers running outbound Graph actions", &c.Workers),
		opt("queue-size", 4096, "outbound actions that may wait for a worker", &c.QueueSize))
	area("Flows",
		opt("flows", "", "a flow file, or a directory of *.yaml flow files, loaded at start and on SIGHUP or POST /v1/flows/reload (empty: only the built-in flow the Automation settings describe)", &c.Flows),
		opt("flow-max-runs", 10000, "flow runs in flight at once; a start over it is refused with 503", &c.FlowMaxRuns),
		opt("flow-wait-timeout", 5*time.Minute, "how long a flow step waits when it names no timeout; then the run fails", &c.FlowWaitTimeout))
	area("Emulator mode",
		opt("emulator-listen", "127.0.0.1:7070", "emulator mode: where the embedded emulator serves Graph, its token endpoint and POST /emulator/incoming (loopback only)", &c.EmulatorListen),
		opt("emulator-seed", 0, "emulator mode: seed of every random decision (0 picks one and logs it), so a run can be repeated", &c.EmulatorSeed),
		opt("emulator-time-scale", 1, "emulator mode: multiplies every emulator delay (0.01 makes a 15 s ring 150 ms)", &c.EmulatorTimeScale),
		opt("emulator-faults", "", "emulator mode: faults to inject, "+FaultsUsage, &c.EmulatorFaults))
	return out
}

// EnvName returns the environment variable for a flag name.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Setting is one documented setting, for the README and tests.
type Setting struct{ Flag, Env, Default, Usage, Area string }

// Settings lists every setting with its default, in declaration order.
func Settings() []Setting {
	var out []Setting
	for _, st := range settings() {
		out = append(out, Setting{Flag: st.name, Env: EnvName(st.name), Default: format(st.def), Usage: st.usage, Area: st.area})
		if st.secret {
			out = append(out, Setting{Flag: "", Env: EnvName(st.name) + "_FILE", Usage: "file holding " + EnvName(st.name), Area: st.area})
		}
	}
	return out
}

// Load reads the config from args (without the program name) and the
// environment given by getenv, applies defaults, and validates it. A flag
// given on the command line wins over its environment variable. On -h or
// -help it writes the usage to helpOut and returns flag.ErrHelp; a bad
// flag is a *UsageError.
func Load(args []string, getenv func(string) string, helpOut io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("botd", flag.ContinueOnError)
	sts := table(&c)
	for _, st := range sts {
		st.bind(fs)
	}
	if err := Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Usage(helpOut)
		}
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, &UsageError{Err: fmt.Errorf("unexpected arguments: %q", fs.Args())}
	}
	secrets := map[string]bool{}
	for _, st := range sts {
		secrets[st.name] = st.secret
	}
	if err := ApplyEnv(fs, EnvPrefix, getenv, secrets); err != nil {
		return Config{}, err
	}
	if err := c.applyGraph(); err != nil {
		return Config{}, err
	}
	if c.FederatedTokenFile == "" && c.ClientSecret == "" && c.ClientCertificateFile == "" && c.ClientID != "" {
		c.FederatedTokenFile = getenv(AzureFederatedTokenFile)
	}
	c.Emulator = c.ClientID == "" && c.TenantID == "" && c.credentials() == 0
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// AzureFederatedTokenFile is the variable Azure workload identity names
// its projected token file in.
const AzureFederatedTokenFile = "AZURE_FEDERATED_TOKEN_FILE"

// credentials counts the Graph credentials set: a secret, a certificate,
// a federated token file.
func (c *Config) credentials() int {
	n := 0
	for _, v := range []string{c.ClientSecret, c.ClientCertificateFile, c.FederatedTokenFile} {
		if v != "" {
			n++
		}
	}
	return n
}

// applyGraph resolves Graph=emulator:<URL>: a standalone "botd emulator"
// at URL serves Graph, the token endpoint and the callbacks' signing keys,
// and accepts its default credentials. Settings given explicitly win.
func (c *Config) applyGraph() error {
	if c.Graph == "" {
		return nil
	}
	root, ok := strings.CutPrefix(c.Graph, "emulator:")
	u, err := url.Parse(root)
	if !ok || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s: %q must be emulator:<URL>, e.g. emulator:http://127.0.0.1:7070", EnvName("graph"), c.Graph)
	}
	root = strings.TrimRight(root, "/")
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.TenantID, emulator.DefaultTenantID)
	def(&c.ClientID, emulator.DefaultClientID)
	if c.credentials() == 0 {
		c.ClientSecret = emulator.DefaultClientSecret
	}
	def(&c.GraphBaseURL, root+"/v1.0")
	def(&c.TokenURL, root+"/"+c.TenantID+"/oauth2/v2.0/token")
	def(&c.AuthMetadataURL, root+"/v1/.well-known/OpenIdConfiguration")
	return nil
}

// KnownEnv lists every environment variable botd's settings read: each
// setting's, and the _FILE of each secret.
func KnownEnv() []string {
	var out []string
	for _, s := range Settings() {
		out = append(out, s.Env)
	}
	return out
}

// UnknownEnv returns a warning for each BOTD_* variable of environ
// ("NAME=value" entries) that is not in known, naming the closest known
// name when it is a few edits away.
func UnknownEnv(environ, known []string) []string {
	isKnown := map[string]bool{}
	for _, k := range known {
		isKnown[k] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || isKnown[name] {
			continue
		}
		if best, ok := problem.Closest(name, known, 4); ok {
			out = append(out, fmt.Sprintf("unknown environment variable %s; did you mean %s?", name, best))
		} else {
			out = append(out, "unknown environment variable "+name)
		}
	}
	sort.Strings(out)
	return out
}

// UsageError is a bad command line: an unknown flag, a bad flag value or
// a stray argument. main tells it from a runtime error by its exit code.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Parse parses args into fs without printing anything: on -h or -help it
// returns flag.ErrHelp, on a bad flag or value a *UsageError with one line,
// the value's error worded as for its environment variable, e.g.
// -retention: "10" is not a duration (for example 10m, 90s).
func Parse(fs *flag.FlagSet, args []string) error {
	var valErr error
	fs.VisitAll(func(f *flag.Flag) {
		orig := *f
		f.Value = &checkedValue{Value: f.Value, set: func(v string, err error) error {
			valErr = valueError("-"+orig.Name, v, &orig, err)
			return valErr
		}}
	})
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return err
	case valErr != nil:
		return &UsageError{Err: valErr}
	}
	return &UsageError{Err: err}
}

// checkedValue is a flag value whose Set failures are worded by set.
type checkedValue struct {
	flag.Value
	set func(v string, err error) error
}

func (v *checkedValue) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		return v.set(s, err)
	}
	return nil
}

func (v *checkedValue) Get() any {
	if g, ok := v.Value.(flag.Getter); ok {
		return g.Get()
	}
	return v.Value.String()
}

func (v *checkedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Usage writes botd's usage: its subcommands, then every setting by area,
// with its environment variable and default.
func Usage(w io.Writer) {
	fs := flag.NewFlagSet("botd", flag.ContinueOnError)
	b := &strings.Builder{}
	b.WriteString(`Usage: botd [flags]
       botd <subcommand> [flags]

botd is a Microsoft Teams calling bot server. Every flag is also read from
its BOTD_* environment variable; a flag on the command line wins.

Subcommands:
  emulator   run the standalone Graph calling emulator, for a botd elsewhere
             (botd emulator -h)
  version    print botd's version
`)
	area := ""
	for _, st := range settings() {
		st.bind(fs)
		f := fs.Lookup(st.name)
		if st.area != area {
			area = st.area
			fmt.Fprintf(b, "\n%s:\n", area)
		}
		writeFlag(b, f, EnvName(st.name), st.secret)
	}
	_, _ = io.WriteString(w, b.String())
}

// UsageFlags writes the flags of fs the way Usage does, each with the
// environment variable prefix + its name; secrets also name the _FILE.
func UsageFlags(w io.Writer, fs *flag.FlagSet, prefix string, secrets map[string]bool) {
	b := &strings.Builder{}
	fs.VisitAll(func(f *flag.Flag) {
		writeFlag(b, f, prefix+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")), secrets[f.Name])
	})
	_, _ = io.WriteString(w, b.String())
}

func writeFlag(b *strings.Builder, f *flag.Flag, env string, secret bool) {
	if cv, ok := f.Value.(*checkedValue); ok { // parsed: show the value's own type
		g := *f
		g.Value = cv.Value
		f = &g
	}
	kind, usage := flag.UnquoteUsage(f)
	fmt.Fprintf(b, "  -%s", f.Name)
	if kind != "" {
		fmt.Fprintf(b, " %s", kind)
	}
	fmt.Fprintf(b, "\n        %s", env)
	if secret {
		fmt.Fprintf(b, " or %s_FILE", env)
	}
	if f.DefValue != "" {
		def := f.DefValue
		if kind == "string" {
			def = fmt.Sprintf("%q", def)
		}
		fmt.Fprintf(b, ", default %s", def)
	}
	fmt.Fprintf(b, "\n        %s\n", usage)
}

// ApplyEnv sets every flag of fs not given on the command line from the
// environment variable prefix + its name in upper case with '-' as '_'.
// Flags named in secrets may also come from <VAR>_FILE, and their values
// are never echoed in errors.
func ApplyEnv(fs *flag.FlagSet, prefix string, getenv func(string) string, secrets map[string]bool) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		env := prefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := lookup(getenv, env)
		if secrets[f.Name] {
			if path, fok := lookup(getenv, env+"_FILE"); fok {
				if ok {
					err = fmt.Errorf("%s and %s_FILE are both set; set one", env, env)
					return
				}
				b, rerr := os.ReadFile(path)
				if rerr != nil {
					err = fmt.Errorf("%s_FILE: %w", env, rerr)
					return
				}
				v, ok = strings.TrimRight(string(b), "\r\n"), true
			}
		}
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			if secrets[f.Name] {
				err = fmt.Errorf("%s: invalid value", env)
				return
			}
			err = valueError(env, v, f, serr)
		}
	})
	return err
}

// valueError names the form a typed value must take, e.g.
// BOTD_RETENTION: "10" is not a duration (for example 10m, 90s).
func valueError(name, v string, f *flag.Flag, serr error) error {
	if g, ok := f.Value.(flag.Getter); ok {
		form := ""
		switch g.Get().(type) {
		case time.Duration:
			form = "a duration (for example 10m, 90s)"
		case bool:
			form = "true or false"
		case int, int64, uint, uint64:
			form = "a whole number"
		case float64:
			form = "a number (for example 0.5)"
		}
		if form != "" {
			return fmt.Errorf("%s: %q is not %s", name, v, form)
		}
	}
	return fmt.Errorf("%s: invalid value %q: %v", name, v, serr)
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// InviteTargets splits InviteOnEstablish into its entries.
func (c *Config) InviteTargets() []string { return List(c.InviteOnEstablish) }

// List splits a comma list, dropping blanks.
func List(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func checkTarget(t string) error {
	if strings.HasPrefix(t, "+") {
		if !model.IsE164(t) {
			return fmt.Errorf("%q is not an E.164 number", t)
		}
		return nil
	}
	if len(t) > 128 || strings.ContainsAny(t, "/?#% ") {
		return fmt.Errorf("%q is neither an E.164 number nor a user id", t)
	}
	return nil
}

// PeerMap parses Peers into instance -> base URL.
func (c *Config) PeerMap() (map[string]string, error) {
	out := map[string]string{}
	for _, e := range List(c.Peers) {
		name, raw, ok := strings.Cut(e, "=")
		if !ok || !isDNSLabel(name) {
			return nil, fmt.Errorf("%q: want instance=http://host:port with a DNS-label instance", e)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("%q: want instance=http://host:port", e)
		}
		out[name] = strings.TrimRight(raw, "/")
	}
	return out, nil
}

const dnsLabelRule = "must be a DNS label: lower-case letters, digits and '-', at most 63"

// isDNSLabel reports whether s is an RFC 1123 label.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// InstanceName turns a host name into an instance name: lower-cased, its
// first label only.
func InstanceName(host string) string {
	host = strings.ToLower(host)
	if i := strings.IndexByte(host, '.'); i >= 0 {
		host = host[:i]
	}
	return host
}

// CallbackURL is the callbackUri for c's own PublicURL and Instance; botd
// uses Runtime.CallbackURL, which has the derived ones.
func (c *Config) CallbackURL() string { return callbackURL(c.PublicURL, c.CallbackPath, c.Instance) }

// Masked returns every setting as env name -> value for the start-up log,
// with secrets replaced by "***" (or "" when unset).
func (c *Config) Masked() map[string]string {
	cp := *c // table takes pointers to the fields: never to the caller's
	out := map[string]string{}
	for _, st := range table(&cp) {
		v := st.value()
		if st.secret && v != "" {
			v = "***"
		}
		out[EnvName(st.name)] = v
	}
	return out
}

// SortedKeys returns m's keys in order, for stable log output.
func SortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
