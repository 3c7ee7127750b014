package release

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// debArch is the Debian architecture each target is packaged for (make deb).
var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64", "armv7": "armhf", "armv6": "armel"}

// debTar returns the files of one of a .deb's tar members ("--ctrl-tarfile"
// or "--fsys-tarfile"), by name, with their headers.
func debTar(t *testing.T, deb, which string) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	out, err := exec.Command("dpkg-deb", which, deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb %s %s: %v", which, deb, err)
	}
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s %s: %v", deb, which, err)
		}
		name := strings.TrimPrefix(h.Name, ".")
		hdrs[name] = h
		if h.Typeflag == tar.TypeReg {
			if data[name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return hdrs, data
}

// TestDebContents inspects the .deb files of `make deb` in $EDGEIPC_DIST
// without installing them: each architecture's package holds that target's
// binary, the unit, the configuration as a conffile and the maintainer
// scripts from packaging/, with the intended modes, and depends on nothing.
func TestDebContents(t *testing.T) {
	dist := os.Getenv("EDGEIPC_DIST")
	if dist == "" {
		t.Skip("EDGEIPC_DIST is not set: make deb runs this test on the packages it built")
	}
	if all, _ := filepath.Glob(filepath.Join(dist, "edgeipc_*.deb")); len(all) == 0 {
		t.Skipf("no .deb in %s: run make deb", dist)
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not found")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := binaries(t)
	for _, tg := range targets {
		arch := debArch[tg.name]
		t.Run(arch, func(t *testing.T) {
			debs, _ := filepath.Glob(filepath.Join(dist, "edgeipc_*_"+arch+".deb"))
			if len(debs) != 1 {
				t.Fatalf("want one edgeipc_*_%s.deb in %s, found %v", arch, dist, debs)
			}
			deb := debs[0]
			out, err := exec.Command("dpkg-deb", "-f", deb).Output()
			if err != nil {
				t.Fatalf("dpkg-deb -f %s: %v", deb, err)
			}
			fields := map[string]string{}
			for _, l := range strings.Split(string(out), "\n") {
				if k, v, ok := strings.Cut(l, ": "); ok && !strings.HasPrefix(l, " ") {
					fields[k] = v
				}
			}
			if fields["Package"] != "edgeipc" || fields["Architecture"] != arch {
				t.Errorf("%s: Package %q Architecture %q, want edgeipc %s", deb, fields["Package"], fields["Architecture"], arch)
			}
			if want := "edgeipc_" + fields["Version"] + "_" + arch + ".deb"; filepath.Base(deb) != want {
				t.Errorf("%s: Version %q does not match the file name", deb, fields["Version"])
			}
			// The binary is static: nothing to depend on. apt installs
			// Recommends by default, so they count too.
			for _, k := range []string{"Depends", "Pre-Depends", "Recommends"} {
				if v, ok := fields[k]; ok {
					t.Errorf("%s: %s: %s (the package must pull in nothing; docs/install.md says apt resolves nothing else)", deb, k, v)
				}
			}

			ctrlHdr, ctrl := debTar(t, deb, "--ctrl-tarfile")
			if got := strings.Fields(string(ctrl["/conffiles"])); len(got) != 1 || got[0] != confPath {
				t.Errorf("%s: conffiles %q, want exactly %s", deb, got, confPath)
			}
			for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
				want, err := os.ReadFile(filepath.Join(root, "packaging", "scripts", s))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(ctrl["/"+s], want) {
					t.Errorf("%s: %s is not packaging/scripts/%s", deb, s, s)
				} else if ctrlHdr["/"+s].Mode&0o111 == 0 {
					t.Errorf("%s: %s is not executable (mode %o)", deb, s, ctrlHdr["/"+s].Mode)
				}
			}

			hdr, data := debTar(t, deb, "--fsys-tarfile")
			bin, err := os.ReadFile(paths[tg.name])
			if err != nil {
				t.Fatal(err)
			}
			unit, err := os.ReadFile(filepath.Join(root, "packaging", "edgeipc.service"))
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]struct {
				mode int64
				want []byte // nil: any content
			}{
				"/usr/bin/edgeipc": {0o755, bin},
				confPath:           {0o640, nil},
				unitPath:           {0o644, unit},
				copyrightPath:      {0o644, nil},
			}
			for name, h := range hdr {
				if h.Uid != 0 || h.Gid != 0 {
					t.Errorf("%s: %s owned by %d:%d, want root", deb, name, h.Uid, h.Gid)
				}
				if _, ok := files[name]; !ok && h.Typeflag != tar.TypeDir {
					t.Errorf("%s: unexpected %s", deb, name)
				}
			}
			for name, f := range files {
				h, ok := hdr[name]
				if !ok || h.Typeflag != tar.TypeReg {
					t.Errorf("%s: no regular file %s", deb, name)
					continue
				}
				if h.Mode&0o7777 != f.mode {
					t.Errorf("%s: %s mode %o, want %o", deb, name, h.Mode&0o7777, f.mode)
				}
				if f.want != nil && !bytes.Equal(data[name], f.want) {
					t.Errorf("%s: %s differs from its source", deb, name)
				}
			}
			if bi, err := buildinfo.Read(bytes.NewReader(data["/usr/bin/edgeipc"])); err != nil {
				t.Errorf("%s: /usr/bin/edgeipc: %v", deb, err)
			} else {
				got := map[string]string{}
				for _, s := range bi.Settings {
					got[s.Key] = s.Value
				}
				if got["GOARCH"] != tg.goarch || got["GOARM"] != tg.goarm {
					t.Errorf("%s: /usr/bin/edgeipc is GOARCH=%s GOARM=%s, want %s %s", deb, got["GOARCH"], got["GOARM"], tg.goarch, tg.goarm)
				}
				checkCopyright(t, deb, string(data[copyrightPath]), bi)
			}
		})
	}
}

// TestDebReproducible: a package is a function of the commit, not of the
// time it was built. make deb gives nfpm SOURCE_DATE_EPOCH (the commit's
// time): every file and member of every .deb carries that time, and
// packing the amd64 one again, in a later second, gives the same bytes.
func TestDebReproducible(t *testing.T) {
	dist := os.Getenv("EDGEIPC_DIST")
	if dist == "" {
		t.Skip("EDGEIPC_DIST is not set: make deb runs this test on the packages it built")
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "edgeipc_*.deb"))
	if len(debs) == 0 {
		t.Skipf("no .deb in %s: run make deb", dist)
	}
	nfpm, sde := os.Getenv("EDGEIPC_NFPM"), os.Getenv("SOURCE_DATE_EPOCH")
	if nfpm == "" || sde == "" {
		t.Fatalf("EDGEIPC_NFPM=%q SOURCE_DATE_EPOCH=%q: run through make deb, which sets both", nfpm, sde)
	}
	epoch, err := strconv.ParseInt(sde, 10, 64)
	if err != nil {
		t.Fatalf("SOURCE_DATE_EPOCH=%q: %v", sde, err)
	}
	for _, deb := range debs {
		for _, which := range []string{"--ctrl-tarfile", "--fsys-tarfile"} {
			hdrs, _ := debTar(t, deb, which)
			for name, h := range hdrs {
				if h.ModTime.Unix() != epoch {
					t.Errorf("%s: %s %s has mtime %v, want SOURCE_DATE_EPOCH %v: the package depends on when it was built",
						filepath.Base(deb), which, name, h.ModTime.UTC(), time.Unix(epoch, 0).UTC())
				}
			}
		}
	}

	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	amd64, _ := filepath.Glob(filepath.Join(dist, "edgeipc_*_amd64.deb"))
	if len(amd64) != 1 {
		t.Fatalf("want one amd64 .deb in %s, found %v", dist, amd64)
	}
	fi, err := os.Stat(amd64[0])
	if err != nil {
		t.Fatal(err)
	}
	for time.Now().Unix() <= fi.ModTime().Unix() {
		time.Sleep(100 * time.Millisecond) // a later second than the first build
	}
	again := filepath.Join(t.TempDir(), filepath.Base(amd64[0]))
	cmd := exec.Command("sh", "-c", nfpm+` package -f "$0" -p deb -t "$1"`, filepath.Join(dist, "nfpm-amd64.yaml"), again)
	cmd.Dir = root // the config's paths are relative to the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s package: %v\n%s", nfpm, err, out)
	}
	a, err := os.ReadFile(amd64[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("packing %s again gave different bytes (%x, then %x)", filepath.Base(amd64[0]), sha256.Sum256(a), sha256.Sum256(b))
	}
}

const copyrightPath = "/usr/share/doc/edgeipc/copyright"

// checkCopyright: the binary is static, so the Go standard library and
// every module it links are in it, and their licenses (BSD, MIT) require
// their notices to go with each copy. The package's copyright file must
// hold the license text of each, found here in the Go installation and
// the module cache.
func checkCopyright(t *testing.T, deb, copyright string, bi *buildinfo.BuildInfo) {
	t.Helper()
	if copyright == "" {
		t.Errorf("%s: no %s: the licenses of the Go standard library and of the modules linked into the binary do not ship with it", deb, copyrightPath)
		return
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	want := map[string]string{"Go standard library " + bi.GoVersion: filepath.Join(strings.TrimSpace(string(goroot)), "LICENSE")}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		out, err := exec.Command("go", "mod", "download", "-json", d.Path+"@"+d.Version).Output()
		if err != nil {
			t.Fatalf("go mod download %s@%s: %v", d.Path, d.Version, err)
		}
		var m struct{ Dir string }
		if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
			t.Fatalf("go mod download %s@%s: no directory (%v)", d.Path, d.Version, err)
		}
		lic, _ := filepath.Glob(filepath.Join(m.Dir, "[LlCc][IiOo][CcPp]*"))
		found := ""
		for _, l := range lic {
			if b := strings.ToUpper(filepath.Base(l)); strings.HasPrefix(b, "LICEN") || strings.HasPrefix(b, "COPYING") {
				found = l
				break
			}
		}
		if found == "" {
			t.Errorf("%s@%s: no license file in %s", d.Path, d.Version, m.Dir)
			continue
		}
		want[d.Path+" "+d.Version] = found
	}
	for name, file := range want {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(copyright, "==== "+name+" ====") || !strings.Contains(copyright, strings.TrimSpace(string(text))) {
			t.Errorf("%s: %s lacks the license of %s (%s)", deb, copyrightPath, name, file)
		}
	}
}
