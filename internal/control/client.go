package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// CallTimeout bounds a whole exchange; up and down answer when the
// exchange with the peer is started, not when the peer has answered.
const CallTimeout = 30 * time.Second

// Call sends one request to the gateway listening on socket and returns
// its answer. A refusal (ok false) is an error carrying the gateway's
// reason; every error is one line that says what to do.
func Call(socket string, req Request) (*Response, error) {
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("no gateway listening on %s: %s (is `isle run` running?)", socket, sysErr(err))
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(CallTimeout))
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	// A gateway that refuses us (busy, wrong user) answers and closes at
	// once, so our write may fail with EPIPE while its answer already sits
	// in our receive buffer: read it before reporting the write error.
	_, werr := conn.Write(append(b, '\n'))
	line, err := bufio.NewReader(io.LimitReader(conn, MaxResponse)).ReadBytes('\n')
	if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
		if werr != nil {
			return nil, fmt.Errorf("sending to the gateway on %s: %s", socket, sysErr(werr))
		}
		return nil, fmt.Errorf("no answer from the gateway on %s: %s", socket, sysErr(err))
	}
	var resp Response
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
