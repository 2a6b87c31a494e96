package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/isle-ipsec/isle/internal/config"
	"github.com/isle-ipsec/isle/internal/control"
)

// The verbs that talk to a running gateway (status, up, down, reload) use
// the control protocol of internal/control: one JSON request line, one
// JSON answer line, over the gateway's Unix socket.

type (
	controlRequest  = control.Request
	controlResponse = control.Response
)

// call sends one request and returns the answer; every failure is one
// line that says what to do.
func call(socket string, req controlRequest) (*controlResponse, error) {
	return control.Call(socket, req)
}

// socketFlags adds --socket and -c to a verb's flags and returns a
// function giving the socket to use: --socket, else control of the
// configuration file if it loads, else the built-in default.
func socketFlags(fs *flag.FlagSet) func() string {
	socket := fs.String("socket", "", "control socket of the running gateway")
	cfgPath := fs.String("c", config.DefaultPath, "configuration file whose control socket to use")
	return func() string {
		if *socket != "" {
			return *socket
		}
		if cfg, err := config.Load(*cfgPath); err == nil {
			return cfg.Gateway.Control
		}
		return config.DefaultControl
	}
}

func cmdUpDown(verb string, args []string, stdout io.Writer) error {
	fs := newFlags(verb)
	socket := socketFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s: expected one NAME or NAME/CHILD, got %d arguments", verb, len(pos))
	}
	name, child, _ := strings.Cut(pos[0], "/")
	if name == "" || strings.Contains(child, "/") || (strings.HasSuffix(pos[0], "/") && child == "") {
		return usagef("%s: %q is not NAME or NAME/CHILD", verb, pos[0])
	}
	resp, err := call(socket(), controlRequest{Command: verb, Name: name, Child: child})
	if err != nil {
		return err
	}
	if resp.Message != "" {
		fmt.Fprintln(stdout, resp.Message)
	}
	return nil
}

func cmdReload(args []string, stdout io.Writer) error {
	fs := newFlags("reload")
	socket := socketFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noPositional("reload", pos); err != nil {
		return err
	}
	resp, err := call(socket(), controlRequest{Command: "reload"})
	if err != nil {
		return err
	}
	if resp.Message != "" {
		fmt.Fprintln(stdout, resp.Message)
	}
	return nil
}
