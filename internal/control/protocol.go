// Package control is the control socket of a running gateway: the server
// the gateway runs (Serve) and the client the verbs `isle status|up|down|
// reload` use (Call).
//
// The protocol is one exchange per connection over a Unix stream socket:
// the client sends one request as a JSON object on one line, the gateway
// answers with one JSON object on one line and closes.
//
//	→ {"command":"status"}
//	→ {"command":"up","name":"office-b","child":"lan"}   (child optional)
//	→ {"command":"down","name":"office-b"}
//	→ {"command":"reload"}
//	← {"ok":true,"message":"office-b: initiating"}
//	← {"ok":true,"status":{"connections":[...]}}        (status: the `isle status --json` object)
//	← {"ok":false,"error":"no connection named \"office-c\""}
package control

import "encoding/json"

// Request is what the client sends.
type Request struct {
	Command string `json:"command"` // status | up | down | reload
	Name    string `json:"name,omitempty"`
	Child   string `json:"child,omitempty"`
}

// Response is what the gateway answers. Status is the status.Status
// object, kept raw so that `isle status --json` prints every field the
// gateway sent, including ones this client does not know.
type Response struct {
	OK      bool            `json:"ok"`
	Error   string          `json:"error,omitempty"`
	Message string          `json:"message,omitempty"`
	Status  json.RawMessage `json:"status,omitempty"`
}

// Commands of the protocol.
const (
	CmdStatus = "status"
	CmdUp     = "up"
	CmdDown   = "down"
	CmdReload = "reload"
)

// MaxRequest bounds a request line. Requests are a few dozen bytes; the
// bound keeps a client from making the gateway buffer without end.
const MaxRequest = 4096

// MaxResponse bounds a response line the client reads: a status of
// thousands of SAs fits many times over.
const MaxResponse = 64 << 20
