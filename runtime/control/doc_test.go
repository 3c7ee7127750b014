package control

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// msgKeys lists the msgpack keys of a protocol struct, in encoding order.
func msgKeys(v any) []string {
	var keys []string
	t := reflect.TypeOf(v)
	for i := 0; i < t.NumField(); i++ {
		k, _, _ := strings.Cut(t.Field(i).Tag.Get("msg"), ",") // "sinks,omitempty"
		if k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

var backquoted = regexp.MustCompile("`([a-z_]+)`")

// TestControlDocMatchesProtocol: docs/control.md, the protocol's reference
// for clients in other languages, names every key of every message in
// encoding order (the page says decoders should not rely on it, but its
// tables and example follow it), every error code, every command, the
// reply-queue name pattern and the queue geometry the code uses.
func TestControlDocMatchesProtocol(t *testing.T) {
	b, err := os.ReadFile("../../docs/control.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	lines := strings.Split(doc, "\n")

	// Request and Reply: the key tables under "### Request" / "### Reply".
	table := func(heading string) []string {
		var keys []string
		in := false
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "#"):
				in = l == heading
			case in && strings.HasPrefix(l, "| `"):
				keys = append(keys, backquoted.FindStringSubmatch(l)[1])
			}
		}
		return keys
	}
	for heading, v := range map[string]any{"### Request": Request{}, "### Reply": Reply{}} {
		if got, want := table(heading), msgKeys(v); !reflect.DeepEqual(got, want) {
			t.Errorf("docs/control.md %s table: keys %v; the %T encodes %v", heading, got, v, want)
		}
	}

	// StatusInfo, RingStat, SourceStat, SinkStat: the paragraph that starts with the
	// type's name lists its keys.
	para := func(name string) []string {
		start := strings.Index(doc, "`"+name+"`:")
		if start < 0 {
			return nil
		}
		end := strings.Index(doc[start:], "\n\n")
		var keys []string
		for _, m := range backquoted.FindAllStringSubmatch(doc[start+len(name)+3:start+end], -1) {
			keys = append(keys, m[1])
		}
		return keys
	}
	for _, v := range []any{StatusInfo{}, RingStat{}, SourceStat{}, SinkStat{}} {
		name := reflect.TypeOf(v).Name()
		got, want := para(name), msgKeys(v)
		// The paragraphs quote values too (kinds, states): keep the keys,
		// each where it is first named.
		isKey := map[string]bool{}
		for _, k := range want {
			isKey[k] = true
		}
		var keys []string
		for _, k := range got {
			if isKey[k] {
				keys = append(keys, k)
				isKey[k] = false // prose after the list names some again
			}
		}
		if !reflect.DeepEqual(keys, want) {
			t.Errorf("docs/control.md, `%s`: lists keys %v; the code encodes %v", name, keys, want)
		}
	}

	// Error codes: the Reply table's code row against the Code constants.
	src, err := os.ReadFile("types.go")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, m := range regexp.MustCompile(`(?m)^\s+Code[A-Za-z]+\s+= "([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		codes = append(codes, m[1])
	}
	var docCodes []string
	for _, l := range lines {
		if strings.HasPrefix(l, "| `code` |") {
			for _, m := range backquoted.FindAllStringSubmatch(l, -1)[1:] {
				docCodes = append(docCodes, m[1])
			}
		}
	}
	sort.Strings(codes)
	sort.Strings(docCodes)
	if len(codes) == 0 || !reflect.DeepEqual(codes, docCodes) {
		t.Errorf("docs/control.md lists the codes %v; types.go has %v", docCodes, codes)
	}

	// Commands: the rows of the table under "## Commands".
	var cmds []string
	in := false
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "#"):
			in = l == "## Commands"
		case in && strings.HasPrefix(l, "| `"):
			cmds = append(cmds, backquoted.FindStringSubmatch(l)[1])
		}
	}
	if !reflect.DeepEqual(cmds, Commands) {
		t.Errorf("docs/control.md's command table has %v; the server understands %v", cmds, Commands)
	}

	for _, want := range []string{
		"`" + replyPattern.String() + "`",
		fmt.Sprintf("depth %d (`MaxMsg`), %d-byte messages", DefaultMaxMsg, RequestMsgSize),
		fmt.Sprintf("depth %d, %d-byte messages", ReplyMaxMsg, ReplyMsgSize),
		fmt.Sprintf("message size (%d bytes)", RequestMsgSize),
		fmt.Sprintf("at most %d such replies at a time (`MaxStreams`)", MaxStreams),
		"`" + DefaultQueue + "`",
		"`" + EnvQueue + "`",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/control.md does not say %s", want)
		}
	}
}
