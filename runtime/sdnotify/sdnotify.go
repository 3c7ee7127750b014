// Package sdnotify implements the systemd service notification protocol
// (sd_notify(3)) without libsystemd: datagrams such as "READY=1" sent to the
// unix datagram socket named by $NOTIFY_SOCKET (a path, or "@name" for an
// abstract socket), and the watchdog interval from $WATCHDOG_USEC and
// $WATCHDOG_PID. With no NOTIFY_SOCKET every call is a no-op, so programs
// call it unconditionally.
package sdnotify

import (
	"net"
	"os"
	"strconv"
	"time"
	"unicode/utf8"
)

// Common states.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
)

// Notifier sends states to the service manager. The zero value (and a nil
// *Notifier) is disabled.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET, or a disabled one.
func FromEnv() *Notifier { return New(os.Getenv("NOTIFY_SOCKET")) }

// New returns a Notifier for socket ("" = disabled; a leading '@' names an
// abstract socket).
func New(socket string) *Notifier {
	if socket == "" {
		return &Notifier{}
	}
	name := socket
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Notify sends one datagram of newline-separated assignments, e.g.
// Notify("RELOADING=1", "MONOTONIC_USEC=123").
func (n *Notifier) Notify(states ...string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := ""
	for i, s := range states {
		if i > 0 {
			msg += "\n"
		}
		msg += s
	}
	_, err = c.Write([]byte(msg))
	return err
}

// MaxStatus is how many bytes of text Status keeps.
const MaxStatus = 256

// Status returns "STATUS=<text>", the one-line state `systemctl status`
// shows. A newline would end the assignment and start another one (text
// quoting an error could then say READY=1 or MAINPID=…), so control
// characters become spaces; text longer than MaxStatus bytes is cut, at a
// UTF-8 boundary, and ends with "…".
func Status(text string) string {
	b := []byte(text)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	if len(b) > MaxStatus {
		n := MaxStatus - len("…")
		for n > 0 && !utf8.RuneStart(b[n]) {
			n--
		}
		b = append(b[:n:n], "…"...)
	}
	return "STATUS=" + string(b)
}

// MonotonicUsec returns "MONOTONIC_USEC=<CLOCK_MONOTONIC µs>", required
// with RELOADING=1 by systemd ≥ 253 for Type=notify-reload.
func MonotonicUsec(nowNs int64) string {
	return "MONOTONIC_USEC=" + strconv.FormatInt(nowNs/1000, 10)
}

// WatchdogInterval returns the watchdog timeout systemd expects pings
// within ($WATCHDOG_USEC), or 0 if the watchdog is off or meant for another
// process ($WATCHDOG_PID names a different pid).
func WatchdogInterval() time.Duration {
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil || pid != os.Getpid() {
			return 0
		}
	}
	return time.Duration(us) * time.Microsecond
}
