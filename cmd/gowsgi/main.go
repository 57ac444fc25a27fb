// Command gowsgi serves Python WSGI applications from one YAML file.
//
// Usage:
//
//	gowsgi [-c gowsgi.yaml] [-log-level info] [-log-format console|json] [-watch=true]
//
// Exit codes: 0 after a clean shutdown (SIGINT or SIGTERM), 1 if the config
// is invalid or a listener cannot be opened, 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/host"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("gowsgi", flag.ContinueOnError)
	cfgPath := fs.String("c", "gowsgi.yaml", "config file")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	watch := fs.Bool("watch", true, "reload when the config file changes (SIGHUP always reloads)")
	format := fs.String("log-format", "", "log format: console or json (default: console on a terminal, else json)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: gowsgi [flags]\n\nServes the Python WSGI apps of a gowsgi.yaml on its listeners.\nSIGINT/SIGTERM: drain and exit 0. SIGHUP: reload the config.\nExit codes: 0 clean shutdown, 1 bad config or listener, 2 bad flags.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log, err := newLogger(*level, *format)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gowsgi:", err)
		return 2
	}

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Catch signals before anything is served, so that an early SIGHUP
	// reloads instead of killing the host.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	h := host.New(log)
	if err := h.Apply(cfg); err != nil {
		log.Error().Err(err).Msg("cannot start")
		h.Shutdown(context.Background())
		return 1
	}
	for key, addr := range h.Addrs() {
		log.Info().Str("listener", key).Str("addr", addr.String()).Msg("listening")
	}

	stopWatch := func() {}
	if *watch {
		if stopWatch, err = h.WatchConfig(*cfgPath); err != nil {
			log.Warn().Err(err).Msg("not watching the config file; reload with SIGHUP")
			stopWatch = func() {}
		}
	}

	for sig := range sigs {
		if sig == syscall.SIGHUP {
			log.Info().Msg("SIGHUP: reloading the config")
			h.ReloadFile(*cfgPath)
			continue
		}
		stopWatch()
		timeout := h.ShutdownTimeout()
		log.Info().Str("signal", sig.String()).Dur("timeout", timeout).Msg("shutting down")
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		h.Shutdown(ctx)
		cancel()
		log.Info().Msg("stopped")
		return 0
	}
	return 0
}

func newLogger(level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("bad -log-level %q", level)
	}
	if format == "" {
		format = "json"
		if isatty.IsTerminal(os.Stderr.Fd()) {
			format = "console"
		}
	}
	var log zerolog.Logger
	switch format {
	case "json":
		log = zerolog.New(os.Stderr)
	case "console":
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly})
	default:
		return zerolog.Logger{}, fmt.Errorf("bad -log-format %q", format)
	}
	return log.Level(lvl).With().Timestamp().Logger(), nil
}
