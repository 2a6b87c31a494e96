package control_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/isle-ipsec/isle/internal/control"
	"github.com/isle-ipsec/isle/internal/status"
)

// gateway is the part of a gateway the control socket sees.
type gateway struct{ conns []string }

func (g *gateway) Status() status.Status {
	var st status.Status
	for _, c := range g.conns {
		st.Connections = append(st.Connections, status.Connection{Name: c})
	}
	return st
}

func (g *gateway) Up(name, child string) error {
	for _, c := range g.conns {
		if c == name {
			return nil // start IKE_SA_INIT here, without waiting for the peer
		}
	}
	return fmt.Errorf("no connection named %q", name)
}

func (g *gateway) Down(name, child string) error { return g.Up(name, child) }
func (g *gateway) Reload() error                 { return nil }

func Example() {
	dir, _ := os.MkdirTemp("", "isle")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "isle.sock")

	// In the gateway: listen first, so that a second gateway or a bad
	// path is an error at startup, then serve until shutdown.
	l, err := control.Listen(sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- control.ServeListener(ctx, l, &gateway{conns: []string{"office-b"}}) }()

	// In `isle up`:
	resp, err := control.Call(sock, control.Request{Command: control.CmdUp, Name: "office-b", Child: "lan"})
	fmt.Println(resp.Message, err)
	_, err = control.Call(sock, control.Request{Command: control.CmdDown, Name: "office-c"})
	fmt.Println(err)

	stop()
	fmt.Println(<-done)
	// Output:
	// office-b/lan: initiating <nil>
	// no connection named "office-c"
	// <nil>
}
