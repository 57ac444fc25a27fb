// Command gowsgi serves Python WSGI applications from one YAML file.
//
// Usage:
//
//	gowsgi [serve] [-c gowsgi.yaml] [-log-level info] [-log-format console|json] [-watch=true] [-keep-sysmon-awake]
//	gowsgi check [-c gowsgi.yaml]
//	gowsgi version
//
// Exit codes: 0 after a clean shutdown (SIGINT or SIGTERM) or a passed
// check, 1 if the config is invalid, a listener cannot be opened or a check
// failed, 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/host"
	"github.com/gowsgi/gowsgi/internal/logbatch"
)

func main() {
	code := run(os.Args[1:])
	stopProfile()
	os.Exit(code)
}

// stopProfile ends a CPU profile started by a build with -tags gowsgiprof
// (profile_dev.go); otherwise it does nothing.
var stopProfile = func() {}

const usageText = `Usage:
  gowsgi [serve] [flags]    serve the apps of a config (the default command)
  gowsgi check [-c FILE]    validate a config and import each of its apps
  gowsgi version            print the version
  gowsgi help               print this help

serve: serves the Python WSGI apps of a gowsgi.yaml on its listeners.
  SIGINT/SIGTERM: stop accepting, let in-flight requests finish (up to
  shutdown_timeout), stop the workers, exit 0.
  SIGHUP, or a change to the config file (unless -watch=false): reload.
  SIGUSR2: upgrade the binary (a new gowsgi takes the sockets; this one drains).

check: validates the config (each problem printed as file:line:col: ...),
  then imports every app in a throwaway worker, as many at once as there
  are CPUs (a static app: checks that its folder can be read), and prints
  one line per app in config order: "app NAME: OK (module M, python P)" or
  "app NAME: OK (static DIR)", or "app NAME: FAILED" and the traceback.
  Opens no listener. For CI pipelines and pre-deploy hooks.

Exit codes:
  0  clean shutdown, check passed, help
  1  invalid config, a listener cannot be opened, check failed
  2  bad usage: unknown command or flag, bad flag value, extra argument
`

// serveFlags and checkFlags define the flags of the two commands; usage
// prints their defaults, so -h always matches what is parsed.
type serveOpts struct {
	cfgPath, level, format string
	watch                  bool
	// sysmonAwake asks for the re-execution of sysmon.go (opt-in).
	sysmonAwake bool
	// levelSet and formatSet tell that -log-level and -log-format were
	// given: they then override the config's log settings.
	levelSet, formatSet bool
}

func serveFlags() (*flag.FlagSet, *serveOpts) {
	o := &serveOpts{}
	fs := newFlagSet("serve")
	fs.StringVar(&o.cfgPath, "c", "gowsgi.yaml", "config `file`")
	fs.StringVar(&o.level, "log-level", "info", "log `level`: debug, info, warn, error (overrides the config's log.level)")
	fs.StringVar(&o.format, "log-format", "", "log `format`: console or json (overrides the config's log.format; default: console on a terminal, else json)")
	fs.BoolVar(&o.watch, "watch", true, "reload when the config file changes (SIGHUP always reloads)")
	fs.BoolVar(&o.sysmonAwake, "keep-sysmon-awake", false, "tuning: re-execute once with GODEBUG=schedtrace so that Go's system monitor never sleeps deeply\n(less CPU per request when the workers are the slow part; a crash may then hang the host; see the README)")
	return fs, o
}

func checkFlags() (*flag.FlagSet, *string) {
	fs := newFlagSet("check")
	return fs, fs.String("c", "gowsgi.yaml", "config `file`")
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("gowsgi "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr) // parse errors; usage is printed by parse
	fs.Usage = func() {}
	return fs
}

func usage(w io.Writer) {
	fmt.Fprint(w, usageText)
	fs, _ := serveFlags()
	fs.SetOutput(w)
	fmt.Fprintf(w, "\nFlags of serve:\n")
	fs.PrintDefaults()
	fs, _ = checkFlags()
	fs.SetOutput(w)
	fmt.Fprintf(w, "\nFlags of check:\n")
	fs.PrintDefaults()
}

// parse parses args into fs. It returns -1 to go on, or the exit code:
// 0 after -h (help on stdout), 2 for bad usage (usage on stderr).
func parse(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(os.Stdout)
			return 0
		}
		fmt.Fprintln(os.Stderr)
		usage(os.Stderr)
		return 2
	}
	if fs.NArg() > 0 {
		hint := ""
		if slices.Contains(commands, fs.Arg(0)) {
			hint = " (the command comes before the flags)"
		}
		fmt.Fprintf(os.Stderr, "gowsgi: unexpected argument %q%s\n\n", fs.Arg(0), hint)
		usage(os.Stderr)
		return 2
	}
	return -1
}

var commands = []string{"serve", "check", "version", "help"}

func run(args []string) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		fs, o := serveFlags()
		if code := parse(fs, args); code >= 0 {
			return code
		}
		fs.Visit(func(f *flag.Flag) {
			o.levelSet = o.levelSet || f.Name == "log-level"
			o.formatSet = o.formatSet || f.Name == "log-format"
		})
		return serve(o)
	case "check":
		fs, cfgPath := checkFlags()
		if code := parse(fs, args); code >= 0 {
			return code
		}
		return check(*cfgPath, os.Stdout, os.Stderr)
	case "version", "help":
		if code := parse(newFlagSet(cmd), args); code >= 0 {
			return code
		}
		if cmd == "help" {
			usage(os.Stdout)
		} else {
			fmt.Println(versionLine())
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "gowsgi: unknown command %q\n\n", cmd)
	usage(os.Stderr)
	return 2
}

// versionLine is "gowsgi VERSION (GOVERSION, OS/ARCH)". A binary built
// from a git checkout adds the commit as semver build metadata:
// 0.1.0+0123456789ab, or 0.1.0+0123456789ab.dirty with local changes.
func versionLine() string {
	v := host.Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			v += "+" + rev[:min(len(rev), 12)]
			if modified == "true" {
				v += ".dirty"
			}
		}
	}
	return fmt.Sprintf("gowsgi %s (%s, %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func serve(o *serveOpts) int {
	flagLevel, err := parseLevel(o.level)
	if err == nil && o.formatSet && o.format != "console" && o.format != "json" {
		err = fmt.Errorf("bad -log-format %q", o.format)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gowsgi:", err)
		return 2
	}

	cfg, err := config.Load(o.cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The format is chosen once, here; the level follows every reload
	// (zerolog's global level, which every logger of this process obeys).
	format := cfg.Log.Format
	if o.formatSet {
		format = o.format
	}
	outs := openLogOutputs()
	defer outs.close()
	log, err := newLogger(format, outs.stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gowsgi:", err)
		return 2
	}
	// The host will run: re-execute it (once) with sysmon kept awake, if
	// asked to.
	var sysmonErr error
	if o.sysmonAwake {
		sysmonErr = keepSysmonAwake(o.cfgPath)
	}
	levelOf := func(lc config.Log) zerolog.Level {
		if o.levelSet || lc.Level == "" {
			return flagLevel
		}
		lvl, _ := zerolog.ParseLevel(lc.Level) // validated by config
		return lvl
	}
	zerolog.SetGlobalLevel(levelOf(cfg.Log))
	if sysmonErr != nil {
		log.Warn().Err(sysmonErr).Msg("-keep-sysmon-awake not applied: Go's system monitor may sleep deeply")
	}
	// Catch signals before anything is served, so that an early SIGHUP
	// reloads instead of killing the host.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR2)
	if n, set := hostProcs(os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)); set {
		runtime.GOMAXPROCS(n)
	}
	log.Debug().Int("gomaxprocs", runtime.GOMAXPROCS(0)).Msg("Go threads")
	upg := inheritSockets(log)
	defer upg.stop()
	h := host.New(log)
	h.SetAccessOutput(outs.stdout)
	h.OnLogConfig(func(lc config.Log) {
		if lvl := levelOf(lc); lvl != zerolog.GlobalLevel() {
			zerolog.SetGlobalLevel(lvl)
			log.WithLevel(max(lvl, zerolog.InfoLevel)).Str("level", lvl.String()).Msg("log level set")
		}
	})
	sig := routeSignals(sigs, h, log)
	defer sig.stop()
	if err := h.Apply(cfg); err != nil {
		if errors.Is(err, host.ErrShuttingDown) { // SIGINT/SIGTERM while the apps started
			stop(h, log)
			return 0
		}
		log.Error().Err(err).Msg("cannot start")
		h.Shutdown(context.Background())
		return 1
	}
	logAddrs(h, log)
	upg.ready()
	serveUntilStopped(h, o, sig, upg, log)
	return 0
}

// logAddrs logs the bound address of every listener.
func logAddrs(h *host.Host, log zerolog.Logger) {
	for key, addr := range h.Addrs() {
		log.Info().Str("listener", key).Str("addr", addr.String()).Msg("listening")
	}
	if a := h.AdminAddr(); a != nil {
		log.Info().Str("addr", a.String()).Msg("admin listening")
	}
}

// serveUntilStopped reloads the config on SIGHUP and, unless -watch=false,
// when its file changes, until SIGINT or SIGTERM; then it shuts the host
// down.
func serveUntilStopped(h *host.Host, o *serveOpts, sig signals, upg *upgrader, log zerolog.Logger) {
	stopWatch := func() {}
	if o.watch {
		var err error
		if stopWatch, err = h.WatchConfig(o.cfgPath); err != nil {
			log.Warn().Err(err).Msg("not watching the config file; reload with SIGHUP")
			stopWatch = func() {}
		}
	}
	for {
		select {
		case <-sig.hup:
			log.Info().Msg("SIGHUP: reloading the config")
			h.ReloadFile(o.cfgPath)
		case <-sig.usr2:
			upg.upgrade(h)
		case <-upg.exited():
			log.Info().Msg("a new gowsgi took over: draining and exiting")
			stopWatch()
			stop(h, log)
			return
		case <-sig.quit:
			stopWatch()
			stop(h, log)
			return
		}
	}
}

// signals are the process's signals as routeSignals hands them on.
type signals struct {
	hup  chan struct{}  // SIGHUP; one waiting stands for any number
	usr2 chan struct{}  // SIGUSR2 (upgrade the binary); likewise
	quit chan os.Signal // SIGINT or SIGTERM, once the shutdown has begun
	stop func()         // ends the routing and waits for it
}

// routeSignals handles the signals of sigs in a goroutine of its own, so
// that SIGINT and SIGTERM begin the shutdown at once, also while the first
// config or a reload is being applied (which is then abandoned, and
// /readyz answers 503 from then on); the main loop finishes it.
func routeSignals(sigs chan os.Signal, h *host.Host, log zerolog.Logger) signals {
	s := signals{hup: make(chan struct{}, 1), usr2: make(chan struct{}, 1), quit: make(chan os.Signal, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sig := range sigs {
			if ch := map[os.Signal]chan struct{}{syscall.SIGHUP: s.hup, syscall.SIGUSR2: s.usr2}[sig]; ch != nil {
				select {
				case ch <- struct{}{}:
				default:
				}
				continue
			}
			h.BeginShutdown()
			log.Info().Str("signal", sig.String()).Dur("timeout", h.ShutdownTimeout()).Msg("shutting down")
			select {
			case s.quit <- sig:
			default:
			}
		}
	}()
	s.stop = func() {
		signal.Stop(sigs)
		close(sigs)
		<-done
	}
	return s
}

// stop shuts the host down, giving requests in flight shutdown_timeout.
func stop(h *host.Host, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), h.ShutdownTimeout())
	defer cancel()
	h.Shutdown(ctx)
	log.Info().Msg("stopped")
}

// hostProcs is how many threads run the host's Go code unless the
// environment sets GOMAXPROCS to a positive number: half of the CPUs the
// process may use (cpus, Go's default), at least one. The Python workers
// are the CPU-bound part; Go threads beyond that mostly spin looking for
// work while a worker runs, on the cores the workers need. Measured on 2
// CPUs with one worker: one thread instead of two gave the hello app ~25%
// and Flask ~40% more requests/s, and halved the host's CPU per Flask
// request. (Setting it stops Go from following later changes of the
// container's CPU limit; the figure is taken once, at start.)
func hostProcs(env string, cpus int) (n int, set bool) {
	if n, err := strconv.Atoi(env); err == nil && n > 0 {
		return 0, false
	}
	return max(1, (cpus+1)/2), true
}

// parseLevel parses a -log-level value.
func parseLevel(level string) (zerolog.Level, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return 0, fmt.Errorf("bad -log-level %q", level)
	}
	return lvl, nil
}

// newLogger returns the process's logger, in format ("" picks console on
// a terminal, else json), writing every level: zerolog's global level
// filters.
func newLogger(format string, out io.Writer) (zerolog.Logger, error) {
	if format == "" {
		format = "json"
		if isatty.IsTerminal(os.Stderr.Fd()) {
			format = "console"
		}
	}
	var log zerolog.Logger
	switch format {
	case "json":
		log = zerolog.New(out)
	case "console":
		consoleDurations()
		log = zerolog.New(consoleWriter(out))
	default:
		return zerolog.Logger{}, fmt.Errorf("bad -log-format %q", format)
	}
	return log.Level(zerolog.TraceLevel).With().Timestamp().Logger(), nil
}

// logOutputs are the host's two log streams, batched (logbatch): its log
// on stderr, and access lines in the Combined Log Format on stdout.
type logOutputs struct{ stderr, stdout *logbatch.Writer }

func openLogOutputs() logOutputs {
	return logOutputs{logbatch.New(os.Stderr, logbatch.Delay), logbatch.New(os.Stdout, logbatch.Delay)}
}

// close writes what the streams hold and stops their flushers.
func (o logOutputs) close() {
	o.stderr.Close()
	o.stdout.Close()
}

// inheritSockets keeps the listening sockets systemd passed (socket
// activation) or an old gowsgi handed over (binary upgrade) for the
// config's listeners to take, and returns the upgrader.
func inheritSockets(log zerolog.Logger) *upgrader {
	takeActivatedSockets(log)
	return newUpgrader(log)
}

// takeActivatedSockets keeps the listening sockets systemd passed (socket
// activation) for the config's listeners to take.
func takeActivatedSockets(log zerolog.Logger) {
	if n, err := host.TakeActivatedSockets(); err != nil {
		log.Error().Err(err).Msg("socket activation")
	} else if n > 0 {
		log.Info().Int("sockets", n).Msg("socket activation: listening sockets inherited")
	}
}
