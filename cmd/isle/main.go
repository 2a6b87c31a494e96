// Command isle is an IPsec site-to-site gateway: an IKEv2 negotiator and a
// userspace ESP/AH tunnel engine driven by one TOML file.
//
//	isle run    [-c FILE]                 run the gateway in the foreground
//	isle check  [-c FILE]                 validate the configuration
//	isle status [--json] [--socket PATH]  IKE_SAs and CHILD_SAs
//	isle up     NAME[/CHILD]              initiate
//	isle down   NAME[/CHILD]              delete (sends DELETE to the peer)
//	isle reload                           re-read the configuration
//	isle version
//
// Flags may stand before or after the positional arguments.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/isle-ipsec/isle/internal/config"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: isle COMMAND [ARGS]

commands:
  run    [-c FILE]                 run the gateway in the foreground (default FILE /etc/isle/isle.toml)
  check  [-c FILE]                 validate FILE; print FILE:LINE: message per problem; exit 1 if any
  status [--json] [--socket PATH]  show IKE_SAs and CHILD_SAs of the running gateway
  up     NAME[/CHILD]              initiate a connection or one of its children
  down   NAME[/CHILD]              delete it (sends DELETE to the peer)
  reload                           re-read the configuration file
  version                          print the version

status, up, down and reload take --socket PATH (default: control of /etc/isle/isle.toml,
else /run/isle/isle.sock). Flags may come before or after the arguments.
`

// errUsage marks a command line mistake: the message is printed with a
// hint to run `isle help`, and the exit status is 2.
var errUsage = errors.New("usage")

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
func (e usageError) Is(target error) bool {
	return target == errUsage
}

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run is the whole command line: it returns the exit status, so tests can
// drive every subcommand in-process.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(rest, stderr)
	case "check":
		var problems bool
		problems, err = cmdCheck(rest, stdout)
		if err == nil && problems {
			return 1
		}
	case "status":
		err = cmdStatus(rest, stdout)
	case "up", "down":
		err = cmdUpDown(cmd, rest, stdout)
	case "reload":
		err = cmdReload(rest, stdout)
	case "version", "--version", "-version":
		err = cmdVersion(rest, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usagef("unknown command %q (run `isle help` for the list)", cmd)
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "isle: %s\n", oneLine(err))
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// oneLine keeps the reason on one line, as the contract asks.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// parseArgs sets the flags of fs from args wherever they stand and returns
// the positional arguments in order. Unlike flag.FlagSet.Parse it does not
// stop at the first positional argument, so `isle down office-b --socket
// /run/a.sock` works. "--" ends the flags. Both -name and --name are
// accepted, with the value as the next argument or after "=".
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, value, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil {
			return nil, usagef("%s: unknown flag %q", fs.Name(), a)
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() && !hasValue {
			value = "true"
		} else if !hasValue {
			if i+1 >= len(args) {
				return nil, usagef("%s: flag %q needs a value", fs.Name(), a)
			}
			i++
			value = args[i]
		}
		if err := fs.Set(name, value); err != nil {
			return nil, usagef("%s: bad value %q for flag %q: %v", fs.Name(), value, a, err)
		}
	}
	return pos, nil
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func noPositional(cmd string, pos []string) error {
	if len(pos) > 0 {
		return usagef("%s: unexpected argument %q", cmd, pos[0])
	}
	return nil
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := newFlags("run")
	path := fs.String("c", config.DefaultPath, "configuration file")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noPositional("run", pos); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		// Every problem on its own line, as `isle check` prints them,
		// then the one-line reason.
		fmt.Fprintln(stderr, err)
		return fmt.Errorf("%s: invalid configuration (see above; `isle check -c %s` lists the problems)", *path, *path)
	}
	return runGateway(cfg, *path)
}

// cmdCheck validates a file. Problems go to stdout, one FILE:LINE: message
// per line (they are the command's output, meant for grep and editors);
// problems reports whether there were any.
func cmdCheck(args []string, stdout io.Writer) (problems bool, err error) {
	fs := newFlags("check")
	path := fs.String("c", config.DefaultPath, "configuration file")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return false, err
	}
	if err := noPositional("check", pos); err != nil {
		return false, err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return true, nil
	}
	fmt.Fprintf(stdout, "%s: ok (%s, %s)\n", *path,
		plural(len(cfg.Connections), "connection"), plural(len(cfg.Manual), "manual SA"))
	return false, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func cmdVersion(args []string, stdout io.Writer) error {
	fs := newFlags("version")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noPositional("version", pos); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "isle %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
