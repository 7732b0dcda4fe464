// Command botd is a Microsoft Teams calling bot server: the callbackUri
// Microsoft Graph posts call notifications to, a call-state machine, and an
// admin API that drives Graph. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/botd/botd/internal/config"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Getenv, os.Environ, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli runs botd and turns its error into an exit code: 0 for success and
// -h, 2 for a bad command line (one line and a hint, not the whole usage),
// 1 for anything else.
func cli(ctx context.Context, args []string, getenv func(string) string, environ func() []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, getenv, environ, stdout, stderr)
	var usage *config.UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		hint := "botd -h"
		if len(args) > 0 && args[0] == "emulator" {
			hint = "botd emulator -h"
		}
		fmt.Fprintf(stderr, "botd: %v\nRun '%s' for usage.\n", err, hint)
		return 2
	default:
		fmt.Fprintln(stderr, "botd:", err)
		return 1
	}
}
