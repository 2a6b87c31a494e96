package swan

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// A small client of charon's vici protocol, enough to list SAs as
// structured data. (swanctl's --raw output cannot be parsed back safely: a
// value with spaces, such as a distinguished name, is printed as is.)
//
// On the socket each packet is a 32-bit big-endian length and then the
// packet: one type byte, a name (one length byte, then the bytes) for the
// named types, and a message. A message is a sequence of elements, each a
// type byte followed by its name and/or value.

const (
	pktCmdRequest     = 0
	pktCmdResponse    = 1
	pktCmdUnknown     = 2
	pktEventRegister  = 3
	pktEventUnreg     = 4
	pktEventConfirm   = 5
	pktEventUnknown   = 6
	pktEvent          = 7
	maxPacket         = 512 << 10 // charon's own limit is lower
	viciTimeout       = 30 * time.Second
	elemSectionStart  = 1
	elemSectionEnd    = 2
	elemKeyValue      = 3
	elemListStart     = 4
	elemListItem      = 5
	elemListEnd       = 6
	maxSectionNesting = 32
)

// Section is a decoded vici message or one of its sections: named values,
// lists and subsections in the order charon sent them.
type Section struct {
	Entries []Entry
}

// Entry is one element of a Section: exactly one of Value, List (with
// IsList) or Section is meaningful.
type Entry struct {
	Name    string
	Value   string
	IsList  bool
	List    []string
	Section *Section
}

// Get returns the value named name, or "".
func (s *Section) Get(name string) string {
	for _, e := range s.Entries {
		if e.Name == name && e.Section == nil && !e.IsList {
			return e.Value
		}
	}
	return ""
}

// GetList returns the list named name, or nil.
func (s *Section) GetList(name string) []string {
	for _, e := range s.Entries {
		if e.Name == name && e.IsList {
			return e.List
		}
	}
	return nil
}

// Sub returns the subsection named name, or nil.
func (s *Section) Sub(name string) *Section {
	for _, e := range s.Entries {
		if e.Name == name && e.Section != nil {
			return e.Section
		}
	}
	return nil
}

// Sections returns the subsections in order.
func (s *Section) Sections() []Entry {
	var out []Entry
	for _, e := range s.Entries {
		if e.Section != nil {
			out = append(out, e)
		}
	}
	return out
}

// decodeMessage parses a vici message body. It accepts only well-formed
// input: balanced sections and lists, no trailing bytes.
func decodeMessage(b []byte) (*Section, error) {
	root := &Section{}
	stack := []*Section{root}
	var list *Entry
	name8 := func() (string, error) {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return "", errors.New("truncated name")
		}
		n := string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
		return n, nil
	}
	value16 := func() (string, error) {
		if len(b) < 2 {
			return "", errors.New("truncated value length")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return "", errors.New("truncated value")
		}
		v := string(b[2 : 2+n])
		b = b[2+n:]
		return v, nil
	}
	for len(b) > 0 {
		typ := b[0]
		b = b[1:]
		cur := stack[len(stack)-1]
		if list != nil && typ != elemListItem && typ != elemListEnd {
			return nil, fmt.Errorf("element %d inside list %q", typ, list.Name)
		}
		switch typ {
		case elemSectionStart:
			name, err := name8()
			if err != nil {
				return nil, err
			}
			if len(stack) > maxSectionNesting {
				return nil, errors.New("sections nested too deep")
			}
			sub := &Section{}
			cur.Entries = append(cur.Entries, Entry{Name: name, Section: sub})
			stack = append(stack, sub)
		case elemSectionEnd:
			if len(stack) == 1 {
				return nil, errors.New("section end without start")
			}
			stack = stack[:len(stack)-1]
		case elemKeyValue:
			name, err := name8()
			if err != nil {
				return nil, err
			}
			v, err := value16()
			if err != nil {
				return nil, err
			}
			cur.Entries = append(cur.Entries, Entry{Name: name, Value: v})
		case elemListStart:
			name, err := name8()
			if err != nil {
				return nil, err
			}
			cur.Entries = append(cur.Entries, Entry{Name: name, IsList: true})
			list = &cur.Entries[len(cur.Entries)-1]
		case elemListItem:
			if list == nil {
				return nil, errors.New("list item outside a list")
			}
			v, err := value16()
			if err != nil {
				return nil, err
			}
			list.List = append(list.List, v)
		case elemListEnd:
			if list == nil {
				return nil, errors.New("list end outside a list")
			}
			list = nil
		default:
			return nil, fmt.Errorf("unknown element type %d", typ)
		}
	}
	if list != nil || len(stack) != 1 {
		return nil, errors.New("message ends inside a section or list")
	}
	return root, nil
}

// encodeMessage is the inverse of decodeMessage, for requests.
func encodeMessage(s *Section) ([]byte, error) {
	var out []byte
	name8 := func(n string) error {
		if len(n) > 255 {
			return fmt.Errorf("name %q too long", n)
		}
		out = append(out, byte(len(n)))
		out = append(out, n...)
		return nil
	}
	value16 := func(v string) error {
		if len(v) > 65535 {
			return errors.New("value too long")
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(v)))
		out = append(out, v...)
		return nil
	}
	var walk func(*Section, int) error
	walk = func(s *Section, depth int) error {
		if depth > maxSectionNesting {
			return errors.New("sections nested too deep")
		}
		for _, e := range s.Entries {
			switch {
			case e.Section != nil:
				out = append(out, elemSectionStart)
				if err := name8(e.Name); err != nil {
					return err
				}
				if err := walk(e.Section, depth+1); err != nil {
					return err
				}
				out = append(out, elemSectionEnd)
			case e.IsList:
				out = append(out, elemListStart)
				if err := name8(e.Name); err != nil {
					return err
				}
				for _, v := range e.List {
					out = append(out, elemListItem)
					if err := value16(v); err != nil {
						return err
					}
				}
				out = append(out, elemListEnd)
			default:
				out = append(out, elemKeyValue)
				if err := name8(e.Name); err != nil {
					return err
				}
				if err := value16(e.Value); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(s, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// viciConn is one connection to a charon's vici socket.
type viciConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialVici(socket string) (*viciConn, error) {
	c, err := net.DialTimeout("unix", socket, viciTimeout)
	if err != nil {
		return nil, fmt.Errorf("vici: %w", err)
	}
	c.SetDeadline(time.Now().Add(viciTimeout))
	return &viciConn{c: c, r: bufio.NewReader(c)}, nil
}

func (v *viciConn) Close() error { return v.c.Close() }

func (v *viciConn) send(typ byte, name string, msg *Section) error {
	body := []byte{typ}
	if name != "" {
		body = append(body, byte(len(name)))
		body = append(body, name...)
	}
	if msg != nil {
		m, err := encodeMessage(msg)
		if err != nil {
			return err
		}
		body = append(body, m...)
	}
	pkt := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	_, err := v.c.Write(append(pkt, body...))
	return err
}

// recv reads one packet and returns its type, name (for named types) and
// message.
func (v *viciConn) recv() (byte, string, *Section, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(v.r, hdr[:]); err != nil {
		return 0, "", nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxPacket {
		return 0, "", nil, fmt.Errorf("vici: packet length %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(v.r, body); err != nil {
		return 0, "", nil, err
	}
	return decodePacket(body)
}

func decodePacket(body []byte) (byte, string, *Section, error) {
	if len(body) == 0 {
		return 0, "", nil, errors.New("vici: empty packet")
	}
	typ, rest := body[0], body[1:]
	name := ""
	switch typ {
	case pktCmdRequest, pktEventRegister, pktEventUnreg, pktEvent:
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return 0, "", nil, errors.New("vici: truncated packet name")
		}
		name, rest = string(rest[1:1+int(rest[0])]), rest[1+int(rest[0]):]
	case pktCmdResponse, pktCmdUnknown, pktEventConfirm, pktEventUnknown:
	default:
		return 0, "", nil, fmt.Errorf("vici: unknown packet type %d", typ)
	}
	msg, err := decodeMessage(rest)
	if err != nil {
		return 0, "", nil, fmt.Errorf("vici: %w", err)
	}
	return typ, name, msg, nil
}

// streamedCommand registers for event, sends command and collects every
// event until the command's response, which it returns too.
func (v *viciConn) streamedCommand(command, event string, req *Section) ([]*Section, *Section, error) {
	if err := v.send(pktEventRegister, event, nil); err != nil {
		return nil, nil, err
	}
	if typ, _, _, err := v.recv(); err != nil || typ != pktEventConfirm {
		return nil, nil, fmt.Errorf("vici: registering for %q: type %d, %v", event, typ, err)
	}
	if err := v.send(pktCmdRequest, command, req); err != nil {
		return nil, nil, err
	}
	var events []*Section
	for {
		typ, name, msg, err := v.recv()
		if err != nil {
			return nil, nil, fmt.Errorf("vici %s: %w", command, err)
		}
		switch {
		case typ == pktEvent && name == event:
			events = append(events, msg)
		case typ == pktCmdResponse:
			if err := v.send(pktEventUnreg, event, nil); err == nil {
				v.recv()
			}
			return events, msg, nil
		case typ == pktCmdUnknown:
			return nil, nil, fmt.Errorf("vici: charon does not know command %q", command)
		default:
			return nil, nil, fmt.Errorf("vici %s: unexpected packet type %d", command, typ)
		}
	}
}

// checkResponse turns a command response with success=no into an error.
func checkResponse(command string, resp *Section) error {
	if resp == nil {
		return nil
	}
	if ok := resp.Get("success"); ok != "" && ok != "yes" {
		return fmt.Errorf("vici %s: %s", command, strings.TrimSpace(resp.Get("errmsg")))
	}
	return nil
}
