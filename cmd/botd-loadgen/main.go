// Command botd-loadgen drives a running botd: it posts raw commsNotifications
// open-loop at a fixed rate (-mode notify), finds the callback ceiling with a
// closed loop at fixed concurrency (-mode max), drives whole call lives through
// the admin API against botd in emulator mode (-mode calls), writes a capacity
// report over several offered rates (-report DIR), or serves a bare chi
// handler to compare botd with (-mode bare-server), alone or with botd's
// decoder (-mode decode-server).
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

//go:embed notification.json
var defaultPayload []byte

//go:embed create-call.json
var defaultCreateBody []byte

//go:embed play-prompt.json
var defaultPromptBody []byte

type options struct {
	mode        string
	url         string
	metrics     string
	admin       string
	rate        float64
	rates       []float64
	duration    time.Duration
	concurrency int
	calls       int
	payload     string
	report      string
	listen      string
	invitees    int
	prompt      bool
	estTimeout  time.Duration
	poll        time.Duration
	timeout     time.Duration
	tokenURL    string
	// participants makes the payload's roster this long (0: as it is).
	participants int
	// reportCalls are the calls held at each step of the report's memory
	// part, ascending (none: no memory part).
	reportCalls []int
	// auth is the Authorization header every notification carries, from
	// -token-url; "" sends none.
	auth string
	// firstCall is the call id index a notify run starts at, and requests,
	// when above 0, the most it sends: a report's memory step posts once
	// to each call it adds.
	firstCall, requests int
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("botd-loadgen", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.mode, "mode", "notify", "notify (open-loop notifications at -rate), max (closed loop at -concurrency; Go's client may be the limit, scripts/bench-webhook.sh uses wrk for ceilings), calls (call lives through the admin API), bare-server (a bare chi handler on -listen), decode-server (the bare handler that also runs botd's notification decoder)")
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080/api/calls", "callback URL notifications are posted to")
	fs.StringVar(&o.metrics, "metrics", "http://127.0.0.1:9090/metrics", "botd's /metrics URL, read before and after a run (empty: skip)")
	fs.StringVar(&o.admin, "admin", "http://127.0.0.1:9090", "botd's admin API base URL (-mode calls)")
	fs.Float64Var(&o.rate, "rate", 1000, "offered notifications per second (-mode notify)")
	rates := fs.String("rates", "1000,2000,4000,8000,16000", "comma list of offered rates for -report")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of a run (of each rate with -report)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "most requests in flight (notify, max); calls driven at once (calls)")
	fs.IntVar(&o.calls, "calls", 1000, "distinct call ids the notifications are spread over")
	fs.StringVar(&o.payload, "payload", "", "notification body file (default: the compact 847-byte roster notification of invite example 1)")
	fs.StringVar(&o.report, "report", "", "write DIR/report.md and DIR/report.svg: notify mode at each of -rates; with -report-calls also DIR/memory.svg")
	reportCalls := fs.String("report-calls", "", "comma list of call counts, ascending, for the report's memory against calls held: at each, one notification at -rate to each call id not yet posted to, then botd's RSS, heap and botd_calls (empty: no memory part)")
	fs.IntVar(&o.participants, "participants", 0, fmt.Sprintf("make the payload's roster this many participants long, copies of its first with ids of their own (1 to %d; 0: the payload as it is)", maxParticipants))
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8081", "address of -mode bare-server and decode-server")
	invite1 := fs.Bool("invite", false, "calls mode: invite a PSTN participant once established (-invitees 1)")
	fs.IntVar(&o.invitees, "invitees", 0, fmt.Sprintf("calls mode: once established, invite this many PSTN participants (distinct numbers), one invite after the other, each waited for until its operation ends, and report the roster size each call reached (0 to %d)", maxInvitees))
	fs.BoolVar(&o.prompt, "prompt", true, "calls mode: play a prompt once established")
	fs.DurationVar(&o.estTimeout, "establish-timeout", 30*time.Second, "calls mode: longest wait for established")
	fs.DurationVar(&o.poll, "poll", 10*time.Millisecond, "calls mode: GET /v1/calls/{id} interval while waiting")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "deadline of one HTTP request")
	fs.StringVar(&o.tokenURL, "token-url", "", "fetch one callback token from this URL at start (botd's emulator serves it: http://127.0.0.1:7070/emulator/callback-token) and send it with every notification, as Graph does, for a botd with BOTD_INBOUND_AUTH=on (empty: no token)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if o.rates, err = parseRates(*rates); err != nil {
		return o, err
	}
	if o.concurrency < 1 || o.calls < 1 || o.duration <= 0 || o.rate <= 0 {
		return o, errors.New("-concurrency, -calls, -duration and -rate must be positive")
	}
	if o.invitees < 0 || o.invitees > maxInvitees {
		return o, fmt.Errorf("-invitees must be between 0 and %d", maxInvitees)
	}
	if *invite1 && o.invitees == 0 {
		o.invitees = 1
	}
	if o.participants < 0 || o.participants > maxParticipants {
		return o, fmt.Errorf("-participants must be between 0 and %d", maxParticipants)
	}
	if o.reportCalls, err = parseCounts(*reportCalls); err != nil {
		return o, err
	}
	if len(o.reportCalls) > 0 && o.report == "" {
		return o, errors.New("-report-calls needs -report DIR")
	}
	return o, nil
}

// parseCounts reads -report-calls: positive and ascending.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v <= 0 || (len(out) > 0 && v <= out[len(out)-1]) {
			return nil, fmt.Errorf("-report-calls: %q is not a count above the one before it", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("-rates: %q is not a positive number", f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("-rates is empty")
	}
	return out, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "botd-loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "botd-loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	switch o.mode {
	case "bare-server":
		return serveBare(ctx, o.listen, bareHandler(), out)
	case "decode-server":
		return serveBare(ctx, o.listen, decodeHandler(), out)
	}
	if o.mode == "calls" {
		res, err := runCalls(ctx, o)
		if err != nil {
			return err
		}
		res.print(out)
		return nil
	}
	payload := defaultPayload
	if o.payload != "" {
		b, err := os.ReadFile(o.payload)
		if err != nil {
			return err
		}
		payload = b
	}
	if o.tokenURL != "" {
		tok, err := fetchToken(ctx, o.tokenURL, o.timeout)
		if err != nil {
			return err
		}
		o.auth = "Bearer " + tok
	}
	if o.participants > 0 {
		var err error
		if payload, err = rosterOf(payload, o.participants); err != nil {
			return err
		}
	}
	ids := o.calls
	if n := len(o.reportCalls); n > 0 {
		ids = max(ids, o.reportCalls[n-1])
	}
	tmpl := newTemplate(payload, ids)
	switch {
	case o.report != "":
		rows, err := runReport(ctx, o, tmpl, out)
		if err != nil {
			return err
		}
		mem, err := runMemory(ctx, o, tmpl, out)
		if err != nil {
			return err
		}
		return writeReport(o.report, o, rows, mem)
	case o.mode == "notify":
		res := runNotify(ctx, o, tmpl)
		res.print(out)
	case o.mode == "max":
		res := runMax(ctx, o, tmpl)
		res.print(out)
	default:
		return fmt.Errorf("unknown -mode %q", o.mode)
	}
	return nil
}
