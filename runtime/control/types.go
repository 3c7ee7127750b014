package control

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file types.go -tests=false

//msgp:limit arrays:1024 maps:64 marshal:true
//msgp:ignore Handler Server ServerOptions Client

import (
	"errors"
)

// StatusInfo answers the "status" command.
type StatusInfo struct {
	Version       string  `msg:"version" json:"version"`
	PID           int     `msg:"pid" json:"pid"`
	StartedUnixNs int64   `msg:"started_unix_ns" json:"started_unix_ns"`
	UptimeS       float64 `msg:"uptime_s" json:"uptime_s"`
	ConfigFile    string  `msg:"config_file" json:"config_file"`     // "" = built-in default
	Rings         int     `msg:"rings" json:"rings"`                 // configured rings, missing ones included
	RingsMissing  int     `msg:"rings_missing" json:"rings_missing"` // of those, rings a reload could not create (RingStat.State "missing")
	Sources       int     `msg:"sources" json:"sources"`
	Reloads       int     `msg:"reloads" json:"reloads"`
	Requests      uint64  `msg:"requests" json:"requests"`
	BadRequests   uint64  `msg:"bad_requests" json:"bad_requests"`
	// ReplyFailures counts replies that could not be delivered (reply
	// queue missing, full or not writable, a streamed reply given up or
	// answered with CodeBusy; Server.ReplyFailures).
	ReplyFailures uint64 `msg:"reply_failures" json:"reply_failures"`
}

// RingStat is one row of the "rings" command.
type RingStat struct {
	Name        string  `msg:"name" json:"name"`
	Slots       int     `msg:"slots" json:"slots"`
	SlotPayload int     `msg:"slot_payload" json:"slot_payload"`
	Policy      string  `msg:"policy" json:"policy"`
	Frames      uint64  `msg:"frames" json:"frames"`   // frames written since the runtime opened it, up to the request
	Bytes       uint64  `msg:"bytes" json:"bytes"`     // written by the runtime's source, or read by the ring's stats reader when a child writes
	RateHz      float64 `msg:"rate_hz" json:"rate_hz"` // over the last completed one-second window
	BytesPerS   float64 `msg:"bytes_per_s" json:"bytes_per_s"`
	Readers     int     `msg:"readers" json:"readers"`
	MaxLag      uint32  `msg:"max_lag" json:"max_lag"`
	Lost        uint64  `msg:"lost" json:"lost"` // sum of readers' lost counters
	Torn        uint64  `msg:"torn" json:"torn"` // frames the runtime's stats reader found overwritten while it read them
	// State is "ok", or "missing": a reload removed the ring's old segment
	// and could not create the new one; the runtime tries again with
	// backoff, and LastError says why the last attempt failed.
	State     string `msg:"state" json:"state"`
	LastError string `msg:"last_error" json:"last_error"`
}

// SourceStat is one row of the "sources" command.
type SourceStat struct {
	Name     string `msg:"name" json:"name"`
	Kind     string `msg:"kind" json:"kind"` // exec, fifo, synthetic
	Ring     string `msg:"ring" json:"ring"`
	State    string `msg:"state" json:"state"` // running, starting, backoff, stopped, failed, waiting (for its ring)
	PID      int    `msg:"pid" json:"pid"`     // exec only, 0 otherwise
	Restarts int    `msg:"restarts" json:"restarts"`
	LastExit string `msg:"last_exit" json:"last_exit"` // "exit status 1", "signal: killed", ""
	Frames   uint64 `msg:"frames" json:"frames"`
	Bytes    uint64 `msg:"bytes" json:"bytes"`
	Bad      uint64 `msg:"bad" json:"bad"`                     // malformed/oversized records dropped
	Dropped  uint64 `msg:"dropped_bytes" json:"dropped_bytes"` // fifo: bytes drained unread after a broken stream (or dropped by a framing change)
	// LogDropped counts lines of an exec child's output (stderr, and
	// stdout with write = "child") not logged because it wrote more than
	// its log_rate.
	LogDropped uint64 `msg:"log_dropped" json:"log_dropped"`
	LastError  string `msg:"last_error" json:"last_error"`
}

// SinkStat is one row of the "sinks" command: a sink the runtime runs,
// declared ([[sinks]]) or implicit (the stats reader "stats:RING" every
// ring has unless stats = false or a stats sink is declared for it).
type SinkStat struct {
	Name     string `msg:"name" json:"name"`
	Kind     string `msg:"kind" json:"kind"` // stats, recorder
	Ring     string `msg:"ring" json:"ring"`
	Implicit bool   `msg:"implicit" json:"implicit"` // the automatic stats:RING reader, not a [[sinks]] entry
	State    string `msg:"state" json:"state"`       // running, backoff (failed; started again after a delay), stopped, waiting (for its ring)
	Path     string `msg:"path" json:"path"`         // recorder: the file appended to; "" otherwise
	Frames   uint64 `msg:"frames" json:"frames"`     // frames read whole (recorder: written whole to the file)
	Bytes    uint64 `msg:"bytes" json:"bytes"`       // payload bytes of those frames
	Lost     uint64 `msg:"lost" json:"lost"`         // frames the sink's reader lost to overwrite (lapped, or torn while it copied them), or skipped as corrupt (a slot whose header breaks the ring ABI)
	Skipped  uint64 `msg:"skipped" json:"skipped"`   // recorder: frames read but not recorded because the file reached max_bytes
	Restarts int    `msg:"restarts" json:"restarts"` // times the sink was started again after it failed
	// LastError is the error of the sink's last failure; it stays after the
	// sink runs again ("" if it never failed).
	LastError string `msg:"last_error" json:"last_error"`
}

// Handler is implemented by the runtime core; the control server calls it
// from its own goroutine(s); implementations must be safe for concurrent use.
type Handler interface {
	Status() StatusInfo
	Rings() []RingStat
	Sources() []SourceStat
	Sinks() []SinkStat
	StartSource(name string) error // errors wrap ErrNotFound for an unknown source
	StopSource(name string) error
	RestartSource(name string) error
	Reload() error // re-read the config file, apply the difference
}

// ErrNotFound is wrapped by Handler errors for an unknown source.
var ErrNotFound = errors.New("control: not found")

// Request is one message on the request queue (msgp map, see docs/control.md).
type Request struct {
	ID    uint64   `msg:"id" json:"id"`       // chosen by the client, echoed in the Reply
	Cmd   string   `msg:"cmd" json:"cmd"`     // "status", "rings", "sources", "sinks", "start", ...
	Args  []string `msg:"args" json:"args"`   // e.g. the source name
	Reply string   `msg:"reply" json:"reply"` // reply queue name, "edgeipc.reply.<pid>.<random>"
	PID   int      `msg:"pid" json:"pid"`     // the client's pid (informational; carries no authority)
	// MaxParts is the most reply parts the client takes: it receives parts
	// while the server sends them, so a reply may have more parts than the
	// reply queue holds (the server waits for room, up to
	// ReplyStallTimeout for each part, without holding up other clients;
	// see MaxStreams). 0 (a client that does not send
	// it): no more parts than the reply queue has room for. The server
	// takes at most MaxReplyParts.
	MaxParts int `msg:"max_parts" json:"max_parts"`
}

// Reply is one message on a client's reply queue.
type Reply struct {
	ID      uint64       `msg:"id" json:"id"`
	OK      bool         `msg:"ok" json:"ok"`
	Error   string       `msg:"error" json:"error,omitempty"`
	Code    string       `msg:"code" json:"code,omitempty"` // machine-readable error class, see Code*
	Status  *StatusInfo  `msg:"status" json:"status,omitempty"`
	Rings   []RingStat   `msg:"rings" json:"rings,omitempty"`
	Sources []SourceStat `msg:"sources" json:"sources,omitempty"`
	// Sinks is left out of the encoding when empty, so that every reply
	// but a "sinks" one is encoded as before the command existed.
	Sinks []SinkStat `msg:"sinks,omitempty" json:"sinks,omitempty"`
	// More is set on every part of a reply split across several messages
	// except the last (Rings, Sources and Sinks concatenate); Client.Call
	// joins them.
	More bool `msg:"more" json:"-"`
}

// Reply.Code values.
const (
	CodeBadRequest       = "bad_request"       // the request did not decode or had bad arguments
	CodeUnknownCommand   = "unknown_command"   // Cmd is not one of Commands
	CodeNotFound         = "not_found"         // the handler's error wraps ErrNotFound
	CodePermissionDenied = "permission_denied" // the reply queue's owner may not use the command
	CodeFailed           = "failed"            // the handler returned another error
	// CodeBusy: a reply in more parts than the reply queue had room for
	// was not sent because the runtime was already streaming MaxStreams
	// replies (to clients slow to take their parts); the command ran, and
	// asking again in a few seconds gets the reply.
	CodeBusy = "busy"
)
