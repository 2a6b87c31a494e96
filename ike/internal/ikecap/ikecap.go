// Package ikecap loads the strongSwan captures kept in testdata/ike (made
// by testdata/ike/capture.sh and extract.py) for the tests of the ike
// packages: the IKE messages of one run and the keys charon logged.
package ikecap

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Message is one captured IKE datagram (non-ESP marker removed).
type Message struct {
	Src, Dst string // "addr port"
	Data     []byte
}

// Capture is one strongSwan run: messages in capture order and the
// initiator's key dumps by name as charon printed them.
type Capture struct {
	Name     string
	Messages []Message
	Keys     map[string][]byte
}

// Dir returns the repository's testdata/ike directory.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "ike")
}

// All loads every capture under testdata/ike.
func All() ([]*Capture, error) {
	dirs, err := filepath.Glob(filepath.Join(Dir(), "strongswan-*"))
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("no captures in %s", Dir())
	}
	var out []*Capture
	for _, d := range dirs {
		c, err := Load(filepath.Base(d))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Load reads testdata/ike/NAME.
func Load(name string) (*Capture, error) {
	dir := filepath.Join(Dir(), name)
	c := &Capture{Name: name, Keys: map[string][]byte{}}
	err := eachLine(filepath.Join(dir, "messages.txt"), func(line string) error {
		f := strings.Fields(line)
		if len(f) != 5 {
			return fmt.Errorf("want 5 fields")
		}
		b, err := hex.DecodeString(f[4])
		if err != nil {
			return err
		}
		c.Messages = append(c.Messages, Message{Src: f[0] + " " + f[1], Dst: f[2] + " " + f[3], Data: b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(filepath.Join(dir, "keys.txt"), func(line string) error {
		i := strings.LastIndex(line, ": ")
		if i < 0 {
			return fmt.Errorf("no \": \"")
		}
		b, err := hex.DecodeString(line[i+2:])
		if err != nil {
			return err
		}
		c.Keys[line[:i]] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Key returns a logged key or an error naming what is missing.
func (c *Capture) Key(name string) ([]byte, error) {
	k, ok := c.Keys[name]
	if !ok {
		return nil, fmt.Errorf("capture %s: no key %q", c.Name, name)
	}
	return k, nil
}

func eachLine(path string, fn func(string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; s.Scan(); n++ {
		if strings.TrimSpace(s.Text()) == "" {
			continue
		}
		if err := fn(s.Text()); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return s.Err()
}
