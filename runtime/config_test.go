package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/shm"
)

func TestDefaultConfig(t *testing.T) {
	c := Default()
	if len(c.Rings) != 2 || c.Rings["imu"].SlotPayload != 64 || c.Rings["camera"].SlotPayload != 640*480 {
		t.Fatalf("unexpected default rings: %+v", c.Rings)
	}
	if len(c.Sources) != 2 || c.Sources[0].RateHz != 1000 || c.Sources[1].RateHz != 30 {
		t.Fatalf("unexpected default sources")
	}
	if c.Runtime.StatsInterval.D() <= 0 || c.Runtime.ShutdownTimeout.D() <= 0 {
		t.Fatal("default intervals not set")
	}
}

func TestConfigErrorsNameFileLineField(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"syntax", "[rings.a]\nslots = = 4\n", []string{"bad.toml:2:"}},
		{"unknown key", "[rings.a]\nslots = 4\nslotz = 8\n", []string{"bad.toml:3:", "rings.a.slotz", "unknown key"}},
		{"unknown source key", "[rings.a]\n\n[[sources]]\nname = \"s\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\nsize_bytes = 3\n", []string{"bad.toml:8:", "sources[0].size_bytes", "unknown key"}},
		{"bad slots", "[rings.a]\nslot_payload = 64\nslots = 3\n", []string{"bad.toml:3:", "rings.a.slots", "power of two"}},
		{"bad policy", "[rings.a]\npolicy = \"drop\"\n", []string{"bad.toml:2:", "rings.a.policy"}},
		{"second source bad", "[rings.a]\n[rings.b]\n[[sources]]\nname = \"x\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 10\n[[sources]]\nname = \"y\"\nkind = \"exec\"\nring = \"b\"\n", []string{"bad.toml:8:", "sources[1] (y).command", "missing"}},
		{"unknown ring", "[[sources]]\nname = \"x\"\nkind = \"synthetic\"\nring = \"nope\"\nrate_hz = 1\n", []string{"bad.toml:4:", "sources[0] (x).ring", "no ring \"nope\""}},
		{"bad duration", "[runtime]\nstats_interval = \"soon\"\n", []string{"bad.toml:2:", "stats_interval"}},
		{"two writers", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n[[sources]]\nname = \"y\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n", []string{"bad.toml:10:", "one writer"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.toml")
			os.WriteFile(p, []byte(c.text), 0o600)
			_, err := Load(p)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// A config whose second ring is invalid creates no segment at all, and
// neither does one whose FIFO path is unusable.
func TestNothingHalfStarted(t *testing.T) {
	e := newEnv(t)
	regular := filepath.Join(e.dir, "plain")
	os.WriteFile(regular, nil, 0o600)
	for _, text := range []string{
		"[rings.first]\nslots = 8\n[rings.second]\nslots = 7\n",
		"[rings.first]\n[rings.second]\n[[sources]]\nname = \"f\"\nkind = \"fifo\"\nring = \"second\"\npath = \"" + regular + "\"\n",
	} {
		p := e.writeConfig(t, "c.toml", text)
		cfg, err := Load(p)
		if err == nil {
			rt, _ := New(cfg, Options{IgnoreSignals: true})
			err = rt.Run(t.Context())
			t.Fatalf("invalid config accepted (run: %v)", err)
		}
		segs, err := shm.ListSegments(e.sopts())
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) != 0 {
			t.Fatalf("segments created by an invalid config: %+v", segs)
		}
	}
}

func TestFIFOPathRefused(t *testing.T) {
	e := newEnv(t)
	regular := filepath.Join(e.dir, "regular")
	os.WriteFile(regular, []byte("x"), 0o600)
	link := filepath.Join(e.dir, "link")
	os.Symlink(filepath.Join(e.dir, "target.fifo"), link)
	for path, want := range map[string]string{regular: "not a FIFO", link: "symlink"} {
		text := "[rings.r]\n[[sources]]\nname = \"f\"\nkind = \"fifo\"\nring = \"r\"\npath = \"" + path + "\"\n"
		_, err := Parse("f.toml", []byte(text))
		var ce ConfigErrors
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "f.toml:6:") {
			t.Errorf("%s: got %v, want a config error at f.toml:6 saying %q", path, err, want)
		}
		// And openFIFO (the check at start time, e.g. after a race) agrees.
		if r, dummy, _, err := openFIFO(path, 0, ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("openFIFO(%s): %v", path, err)
			if err == nil {
				r.Close()
				unix.Close(dummy)
			}
		}
	}
	if b, _ := os.ReadFile(regular); string(b) != "x" {
		t.Fatal("the regular file was modified")
	}
}
