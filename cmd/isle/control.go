package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/isle-ipsec/isle/internal/config"
)

// The control protocol between the verbs that talk to a running gateway
// and the gateway's control socket (a Unix stream socket): the client
// sends one request as a JSON object on one line, the gateway answers with
// one JSON object on one line and closes.
//
//	→ {"command":"status"}
//	→ {"command":"up","name":"office-b","child":"lan"}   (child optional)
//	→ {"command":"down","name":"office-b"}
//	→ {"command":"reload"}
//	← {"ok":true,"message":"office-b: initiated"}
//	← {"ok":true,"status":{"connections":[...]}}        (status: the `isle status --json` object)
//	← {"ok":false,"error":"no connection named \"office-c\""}

// controlRequest is what the client sends.
type controlRequest struct {
	Command string `json:"command"`
	Name    string `json:"name,omitempty"`
	Child   string `json:"child,omitempty"`
}

// controlResponse is what the gateway answers.
type controlResponse struct {
	OK      bool            `json:"ok"`
	Error   string          `json:"error,omitempty"`
	Message string          `json:"message,omitempty"`
	Status  json.RawMessage `json:"status,omitempty"`
}

// controlTimeout bounds a whole exchange; up and down answer when the
// exchange is started, not when the peer has answered.
const controlTimeout = 30 * time.Second

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

// call sends one request and returns the answer; every failure is one
// line that says what to do.
func call(socket string, req controlRequest) (*controlResponse, error) {
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("no gateway listening on %s: %s (is `isle run` running?)", socket, sysErr(err))
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(controlTimeout))
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("sending to the gateway on %s: %s", socket, sysErr(err))
	}
	line, err := bufio.NewReader(io.LimitReader(conn, 64<<20)).ReadBytes('\n')
	if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
		return nil, fmt.Errorf("no answer from the gateway on %s: %s", socket, sysErr(err))
	}
	var resp controlResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("the gateway on %s answered something that is not JSON: %v", socket, err)
	}
	if !resp.OK {
		if resp.Error == "" {
			resp.Error = "the gateway refused the request without saying why"
		}
		return nil, errors.New(resp.Error)
	}
	return &resp, nil
}

// sysErr strips "dial unix /path:" and the like, leaving the reason.
func sysErr(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

func cmdStatus(args []string, stdout io.Writer) error {
	fs := newFlags("status")
	asJSON := fs.Bool("json", false, "print the status as one JSON object")
	socket := socketFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noPositional("status", pos); err != nil {
		return err
	}
	resp, err := call(socket(), controlRequest{Command: "status"})
	if err != nil {
		return err
	}
	if *asJSON {
		var v any
		if err := json.Unmarshal(resp.Status, &v); err != nil {
			return fmt.Errorf("the gateway's status is not JSON: %v", err)
		}
		b, _ := json.Marshal(v)
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	var st status
	if err := json.Unmarshal(resp.Status, &st); err != nil {
		return fmt.Errorf("the gateway's status does not have the expected form: %v", err)
	}
	printStatus(stdout, &st)
	return nil
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

// status mirrors the `isle status --json` contract, for the text form.
type status struct {
	Connections []struct {
		Name   string `json:"name"`
		IKESAs []struct {
			State        string `json:"state"`
			Local        string `json:"local"`
			Remote       string `json:"remote"`
			Initiator    bool   `json:"initiator"`
			SPIi         string `json:"spi_i"`
			SPIr         string `json:"spi_r"`
			Proposal     string `json:"proposal"`
			Established  int64  `json:"established_s"`
			RekeyIn      int64  `json:"rekey_in_s"`
			ChildSAsList []struct {
				Name       string   `json:"name"`
				State      string   `json:"state"`
				Protocol   string   `json:"protocol"`
				Mode       string   `json:"mode"`
				Encap      bool     `json:"encap"`
				Proposal   string   `json:"proposal"`
				SPIIn      string   `json:"spi_in"`
				SPIOut     string   `json:"spi_out"`
				BytesIn    uint64   `json:"bytes_in"`
				PacketsIn  uint64   `json:"packets_in"`
				BytesOut   uint64   `json:"bytes_out"`
				PacketsOut uint64   `json:"packets_out"`
				LocalTS    []string `json:"local_ts"`
				RemoteTS   []string `json:"remote_ts"`
				RekeyIn    int64    `json:"rekey_in_s"`
			} `json:"children"`
		} `json:"ike_sas"`
	} `json:"connections"`
}

// printStatus writes the status in the shape of `swanctl --list-sas`.
func printStatus(w io.Writer, st *status) {
	if len(st.Connections) == 0 {
		fmt.Fprintln(w, "no connections")
	}
	for _, c := range st.Connections {
		if len(c.IKESAs) == 0 {
			fmt.Fprintf(w, "%s: no IKE_SA\n", c.Name)
		}
		for _, ike := range c.IKESAs {
			role := "responder"
			if ike.Initiator {
				role = "initiator"
			}
			fmt.Fprintf(w, "%s: %s, IKEv2, %s_i %s_r, %s\n", c.Name, ike.State, ike.SPIi, ike.SPIr, role)
			fmt.Fprintf(w, "  local  %s\n  remote %s\n", ike.Local, ike.Remote)
			if ike.Proposal != "" {
				fmt.Fprintf(w, "  %s\n", ike.Proposal)
			}
			fmt.Fprintf(w, "  established %ds ago, rekeying in %ds\n", ike.Established, ike.RekeyIn)
			for _, ch := range ike.ChildSAsList {
				encap := ""
				if ch.Encap {
					encap = "-in-UDP"
				}
				fmt.Fprintf(w, "  %s: %s, %s, %s%s, SPIs: %s_i %s_o\n", ch.Name, ch.State, ch.Mode, ch.Protocol, encap, ch.SPIIn, ch.SPIOut)
				if ch.Proposal != "" {
					fmt.Fprintf(w, "    %s, rekeying in %ds\n", ch.Proposal, ch.RekeyIn)
				}
				fmt.Fprintf(w, "    in  %d bytes, %d packets\n", ch.BytesIn, ch.PacketsIn)
				fmt.Fprintf(w, "    out %d bytes, %d packets\n", ch.BytesOut, ch.PacketsOut)
				fmt.Fprintf(w, "    local  %s\n    remote %s\n", strings.Join(ch.LocalTS, " "), strings.Join(ch.RemoteTS, " "))
			}
		}
	}
}
