package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/isle-ipsec/isle/internal/config"
	"github.com/isle-ipsec/isle/internal/control"
	"github.com/isle-ipsec/isle/internal/gateway"
)

// statsFileEnv names a file that `isle run` rewrites with the dataplane's
// counters (JSON) on SIGUSR1 and at exit: for tests and scripts that want
// them without the control socket (`isle status` shows them too).
const statsFileEnv = "ISLE_STATS_FILE"

// retransmitEnv shortens IKE retransmissions ("500ms,3": first timeout,
// tries) so that tests find a dead peer in seconds rather than strongSwan's
// default of minutes.
const retransmitEnv = "ISLE_IKE_RETRANSMIT"

// cpuProfileEnv names a file that `isle run` writes a Go CPU profile to,
// from start to a clean stop (SIGTERM/SIGINT): a debugging aid for the
// dataplane (`go tool pprof bin/isle FILE`). scripts/bench.sh uses perf
// instead, which also sees the kernel's share.
const cpuProfileEnv = "ISLE_CPUPROFILE"

func parseRetransmit(v string) (time.Duration, int, error) {
	d, n, ok := strings.Cut(v, ",")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want TIMEOUT,TRIES such as 500ms,3", v)
	}
	timeout, err := time.ParseDuration(d)
	if err != nil || timeout <= 0 {
		return 0, 0, fmt.Errorf("%q: bad timeout", v)
	}
	tries, err := strconv.Atoi(n)
	if err != nil || tries < 1 {
		return 0, 0, fmt.Errorf("%q: bad tries", v)
	}
	return timeout, tries, nil
}

// runGateway runs the gateway in the foreground until SIGINT or SIGTERM;
// SIGHUP reloads the configuration and SIGUSR1 reports the counters.
func runGateway(cfg *config.Config, path string) error {
	log := newLogger(cfg.Gateway)
	// Signals first: SIGHUP's default action would end a gateway that
	// is still starting.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("starting", "config", path, "manual_sas", len(cfg.Manual), "connections", len(cfg.Connections))
	if prof := os.Getenv(cpuProfileEnv); prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return fmt.Errorf("%s: %w", cpuProfileEnv, err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", cpuProfileEnv, err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	// The control socket first: a second gateway with the same socket
	// fails here, before it touches the TUN device.
	ctl, err := control.Listen(cfg.Gateway.Control)
	if err != nil {
		return err
	}
	opts := gateway.Options{Version: version}
	if v := os.Getenv(retransmitEnv); v != "" {
		if opts.RetransmitTimeout, opts.RetransmitTries, err = parseRetransmit(v); err != nil {
			ctl.Close()
			return fmt.Errorf("%s: %w", retransmitEnv, err)
		}
	}
	g, err := gateway.New(cfg, opts, log)
	if err != nil {
		ctl.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- control.ServeListener(ctx, ctl, g) }()
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGHUP {
				reload(log, g)
			} else {
				reportStats(log, g)
			}
		}
	}()
	<-ctx.Done()
	log.Info("stopping", "reason", context.Cause(ctx).Error())
	reportStats(log, g)
	if err := <-served; err != nil {
		log.Warn("control socket", "err", err)
	}
	if err := g.Close(); err != nil {
		return fmt.Errorf("stopping: %w", err)
	}
	log.Info("stopped")
	return nil
}

// reload re-reads the configuration file (SIGHUP); a file that does not
// load changes nothing.
func reload(log *slog.Logger, g *gateway.Gateway) {
	if err := g.Reload(); err != nil {
		log.Error("reload failed", "err", err.Error())
		return
	}
	log.Info("reloaded")
}

// reportStats logs the counters and, when ISLE_STATS_FILE is set, writes
// them there as JSON (atomically: write then rename).
func reportStats(log *slog.Logger, g *gateway.Gateway) {
	st := g.Stats()
	log.Info("stats", "stats", st)
	path := os.Getenv(statsFileEnv)
	if path == "" {
		return
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		tmp := path + ".tmp"
		if err = os.WriteFile(tmp, append(b, '\n'), 0o600); err == nil {
			err = os.Rename(tmp, path)
		}
	}
	if err != nil {
		log.Error("writing stats file", "path", path, "err", err)
	}
}

func newLogger(gw config.Gateway) *slog.Logger {
	var level slog.Level
	switch gw.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if gw.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
