package runtime

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary text as a configuration file: Parse never
// panics, and it either returns a configuration or an error that is a
// *ConfigError or ConfigErrors naming the file.
func FuzzParse(f *testing.F) {
	f.Add(DefaultTOML())
	f.Add([]byte("[rings.cam]\nslots = 8\nslot_size = \"300k\"\n"))
	f.Add([]byte("[[sources]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"/bin/true\"]\nring = \"x\"\n"))
	f.Add([]byte("[runtime]\nstats_interval = \"-1s\"\nbogus = 1\n"))
	f.Add([]byte("[rings.a]\nslots = \"8\"\n[sources.x]\nrate = 1\n[[rings]]\nname = 1\n"))
	f.Add([]byte("sources = [{name = \"x\", command = \"true\"}]\n[ring.a]\nSLOT = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err == nil {
			if c == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			return
		}
		var ce *ConfigError
		var ces ConfigErrors
		switch {
		case errors.As(err, &ce):
		case errors.As(err, &ces):
			if len(ces) == 0 {
				t.Fatal("empty ConfigErrors")
			}
		default:
			t.Fatalf("error %T is neither *ConfigError nor ConfigErrors: %v", err, err)
		}
		if !strings.Contains(err.Error(), "fuzz.toml") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}
