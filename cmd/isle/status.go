package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/isle-ipsec/isle/internal/status"
)

// cmdStatus prints the gateway's IKE_SAs and CHILD_SAs: as one JSON line
// with --json (every field the gateway sent, known here or not), else in
// the layout of `swanctl --list-sas`.
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
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	var st status.Status
	if err := json.Unmarshal(resp.Status, &st); err != nil {
		return fmt.Errorf("the gateway's status does not have the expected form: %v", err)
	}
	return status.WriteText(stdout, &st)
}
