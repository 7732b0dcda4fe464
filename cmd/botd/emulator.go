package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/config"
	"github.com/botd/botd/internal/emulator"
)

// runEmulator is "botd emulator": the Graph calling emulator on its own,
// for a bot that runs elsewhere. Flags also come from BOTD_EMULATOR_*.
func runEmulator(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("botd emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:7070", "address the emulator serves Graph, its token endpoint, OpenID configuration and /emulator/incoming on")
	tenant := fs.String("tenant-id", emulator.DefaultTenantID, "tenant id the token endpoint accepts")
	client := fs.String("client-id", emulator.DefaultClientID, "client id the token endpoint accepts: the bot's app id, audience of the callbacks' tokens")
	secret := fs.String("client-secret", emulator.DefaultClientSecret, "client secret the token endpoint accepts (or BOTD_EMULATOR_CLIENT_SECRET_FILE)")
	botCallback := fs.String("bot-callback", "", "the bot's registered calling webhook, where incoming calls ring")
	seed := fs.Int64("seed", 0, "seed of every random decision; 0 picks one and logs it")
	scale := fs.Float64("time-scale", 1, "multiplies every emulator delay")
	faults := fs.String("faults", "", "faults to inject: kind=probability[/next],...")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := config.ApplyEnv(fs, "BOTD_EMULATOR_", getenv, map[string]bool{"client-secret": true}); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("botd emulator: unexpected arguments %q", fs.Args())
	}
	rules, err := emulator.ParseFaults(*faults)
	if err != nil {
		return fmt.Errorf("BOTD_EMULATOR_FAULTS: %w", err)
	}
	if *scale <= 0 {
		return fmt.Errorf("BOTD_EMULATOR_TIME_SCALE: must be above 0")
	}
	level, err := zerolog.ParseLevel(*logLevel)
	if err != nil {
		return fmt.Errorf("BOTD_EMULATOR_LOG_LEVEL: %w", err)
	}
	log := zerolog.New(stdout).Level(level).With().Timestamp().Str("service", "botd-emulator").Logger()
	return emulator.Run(ctx, emulator.Options{
		TenantID: *tenant, ClientID: *client, ClientSecret: *secret,
		BotCallbackURL: *botCallback, Seed: *seed, TimeScale: *scale, Faults: rules,
		Log: log,
	}, *listen)
}
