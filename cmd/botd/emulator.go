package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/config"
	"github.com/botd/botd/internal/emulator"
)

// emulatorEnvPrefix prefixes the environment variables of botd emulator's
// flags: -listen is BOTD_EMULATOR_LISTEN.
const emulatorEnvPrefix = "BOTD_EMULATOR_"

// emulatorSecrets are the flags also read from BOTD_EMULATOR_<NAME>_FILE.
var emulatorSecrets = map[string]bool{"client-secret": true}

type emulatorOpts struct {
	listen, tenant, tenants, client, secret, botCallback, faults, logLevel *string
	seed                                                                   *int64
	scale                                                                  *float64
}

// emulatorFlags are botd emulator's flags, the one list of them.
func emulatorFlags() (*flag.FlagSet, emulatorOpts) {
	fs := flag.NewFlagSet("botd emulator", flag.ContinueOnError)
	var o emulatorOpts
	o.listen = fs.String("listen", "127.0.0.1:7070", "address the emulator serves Graph, its token endpoint, OpenID configuration and /emulator/incoming on")
	o.tenant = fs.String("tenant-id", emulator.DefaultTenantID, "tenant id the token endpoint accepts")
	o.tenants = fs.String("tenants", emulator.AnyTenant, "further tenants the token endpoint issues tokens for, as a multi-tenant app's: a comma list, or * for any")
	o.client = fs.String("client-id", emulator.DefaultClientID, "client id the token endpoint accepts: the bot's app id, audience of the callbacks' tokens")
	o.secret = fs.String("client-secret", emulator.DefaultClientSecret, "client secret the token endpoint accepts (or BOTD_EMULATOR_CLIENT_SECRET_FILE)")
	o.botCallback = fs.String("bot-callback", "", "the bot's registered calling webhook, where incoming calls ring, e.g. http://127.0.0.1:8080/api/calls")
	o.seed = fs.Int64("seed", 0, "seed of every random decision; 0 picks one and logs it")
	o.scale = fs.Float64("time-scale", 1, "multiplies every emulator delay")
	o.faults = fs.String("faults", "", "faults to inject, "+config.FaultsUsage)
	o.logLevel = fs.String("log-level", "info", "debug, info, warn or error")
	return fs, o
}

// runEmulator is "botd emulator": the Graph calling emulator on its own,
// for a bot that runs elsewhere. Flags also come from BOTD_EMULATOR_*.
func runEmulator(ctx context.Context, args []string, getenv func(string) string, environ func() []string, stdout io.Writer) error {
	fs, o := emulatorFlags()
	if err := config.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, "Usage: botd emulator [flags]\n\nbotd emulator serves the Graph calling emulator on its own, for a botd\nelsewhere: it prints the BOTD_GRAPH line that points a botd at it.\nEvery flag is also read from its BOTD_EMULATOR_* environment variable.\n\nFlags:\n")
			config.UsageFlags(stdout, fs, emulatorEnvPrefix, emulatorSecrets)
		}
		return err
	}
	if err := config.ApplyEnv(fs, emulatorEnvPrefix, getenv, emulatorSecrets); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &config.UsageError{Err: fmt.Errorf("emulator: unexpected arguments %q", fs.Args())}
	}
	rules, err := emulator.ParseFaults(*o.faults)
	if err != nil {
		return fmt.Errorf("BOTD_EMULATOR_FAULTS: %w", err)
	}
	if *o.scale <= 0 {
		return fmt.Errorf("BOTD_EMULATOR_TIME_SCALE: must be above 0")
	}
	level, err := zerolog.ParseLevel(*o.logLevel)
	if err != nil {
		return fmt.Errorf("BOTD_EMULATOR_LOG_LEVEL: %w", err)
	}
	var botEnv []string
	if *o.botCallback != "" {
		if botEnv, err = botEnvFor(*o.botCallback); err != nil {
			return fmt.Errorf("BOTD_EMULATOR_BOT_CALLBACK: %w", err)
		}
	}
	log := zerolog.New(stdout).Level(level).With().Timestamp().Str("service", "botd-emulator").Logger()
	warnUnknownEnv(log, environ)
	s, err := emulator.StartOn(emulator.Options{
		TenantID: *o.tenant, Tenants: config.List(*o.tenants), ClientID: *o.client, ClientSecret: *o.secret,
		BotCallbackURL: *o.botCallback, Seed: *o.seed, TimeScale: *o.scale, Faults: rules,
		Log: log,
	}, *o.listen)
	if err != nil {
		return err
	}
	defer s.Close()
	log.Info().Str("component", "emulator").Str("addr", s.URL()).Str("graph_url", s.GraphURL()).
		Str("token_url", s.TokenURL()).Str("openid_configuration", s.OpenIDConfigURL()).
		Str("incoming", s.URL()+"/emulator/incoming").Msg("emulator listening")

	// The line to paste into the shell of the botd that uses this emulator.
	env := []string{config.EnvName("graph") + "=emulator:" + s.URL()}
	if *o.tenant != emulator.DefaultTenantID {
		env = append(env, config.EnvName("tenant-id")+"="+*o.tenant)
	}
	if *o.client != emulator.DefaultClientID {
		env = append(env, config.EnvName("client-id")+"="+*o.client)
	}
	if *o.secret != emulator.DefaultClientSecret {
		env = append(env, config.EnvName("client-secret")+"=<this emulator's -client-secret>")
	}
	env = append(env, botEnv...)
	log.Info().Str("env", strings.Join(env, " ")).Msg("point a botd at this emulator: " + strings.Join(env, " "))
	if *o.botCallback == "" {
		log.Info().Msg("incoming calls (POST /emulator/incoming) ring no bot: start the emulator with -bot-callback, e.g. -bot-callback http://127.0.0.1:8080/api/calls")
	}
	<-ctx.Done()
	return nil
}

// botEnvFor returns the settings that make a botd serve the webhook
// callback: its public URL, and its callback path and listener when they
// are not botd's defaults.
func botEnvFor(callback string) ([]string, error) {
	u, err := url.Parse(callback)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", callback)
	}
	env := []string{config.EnvName("public-url") + "=" + u.Scheme + "://" + u.Host}
	if p := strings.TrimRight(u.Path, "/"); p != "" && p != "/api/calls" {
		env = append(env, config.EnvName("callback-path")+"="+p)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if port != "8080" {
		env = append(env, config.EnvName("listen")+"=:"+port)
	}
	return env, nil
}
