package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/resource"
	"sigs.k8s.io/yaml"
)

const root = "../.." // the module's root, from this package's folder

// testConfig is a release of version into a new folder.
func testConfig(t *testing.T, version string, platforms ...Platform) Config {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Version:    version,
		Platforms:  platforms,
		ImageRepo:  "registry.example.com/platform/locus-scheduler",
		ReleaseURL: "https://downloads.example.com/locus/" + version,
		SourceURL:  "https://example.com/locus",
		Revision:   "0123456789abcdef0123456789abcdef01234567",
		Epoch:      time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		Root:       abs,
		Out:        filepath.Join(t.TempDir(), "dist"),
		Log:        testWriter{t},
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

var allPlatforms = func() []Platform {
	ps, err := ParsePlatforms(DefaultPlatforms)
	if err != nil {
		panic(err)
	}
	return ps
}()

var host = Platform{runtime.GOOS, runtime.GOARCH}

// standIns compiles, for every platform, a small program in place of each
// command (it prints its name and platform), into DIR/OS_ARCH/COMMAND as
// Config.BinDir wants them.
func standIns(t *testing.T, platforms []Platform) string {
	t.Helper()
	src := t.TempDir()
	for name, data := range map[string]string{
		"go.mod":  "module standin\n\ngo 1.24\n",
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\t\"runtime\"\n)\n\nvar name string\n\nfunc main() { fmt.Println(\"stand-in\", name, runtime.GOOS+\"/\"+runtime.GOARCH) }\n",
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	for _, p := range platforms {
		for _, cmd := range []string{kubectlLocus, locusScheduler} {
			build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.name="+cmd, "-o", filepath.Join(dir, p.OS+"_"+p.Arch, p.exe(cmd)), ".")
			build.Dir = src
			build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch, "GOWORK=off", "GOFLAGS=")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("building the stand-in %s for %s: %v\n%s", cmd, p, err, out)
			}
		}
	}
	return dir
}

// TestReleaseArtifacts releases stand-in binaries for every default
// platform and checks every artifact: archives, checksums, the krew
// manifest (installed as krew would), the install and CRD manifests, and
// the OCI image of both linux platforms; a second release of the same
// binaries is the same, byte for byte.
func TestReleaseArtifacts(t *testing.T) {
	bins := standIns(t, allPlatforms)
	c := testConfig(t, "v1.2.3-rc.1", allPlatforms...)
	c.BinDir = bins
	if err := Release(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	rel := checkRelease(t, c)

	for _, p := range allPlatforms {
		for _, cmd := range []string{kubectlLocus, locusScheduler} {
			want, err := os.ReadFile(filepath.Join(bins, p.OS+"_"+p.Arch, p.exe(cmd)))
			if err != nil {
				t.Fatal(err)
			}
			if got := rel.binary(t, cmd, p); !bytes.Equal(got, want) {
				t.Errorf("%s: the binary is not the one built for %s", Archive(cmd, c.Version, p), p)
			}
		}
	}
	// The host's binaries run from their archives, each the right one.
	if slices.Contains(allPlatforms, host) {
		for _, cmd := range []string{kubectlLocus, locusScheduler} {
			out := rel.run(t, cmd, host)
			if want := fmt.Sprintf("stand-in %s %s\n", cmd, host); out != want {
				t.Errorf("%s from its archive printed %q, want %q", cmd, out, want)
			}
		}
	}

	again := c
	again.Out = filepath.Join(t.TempDir(), "dist")
	if err := Release(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(c.Out, Checksums))
	b, _ := os.ReadFile(filepath.Join(again.Out, Checksums))
	if !bytes.Equal(a, b) {
		t.Errorf("two releases of the same binaries differ:\n%s\n%s", a, b)
	}
}

// TestReleaseBuild builds the real commands for the host platform, as make
// release does for each (CGO_ENABLED=0, -trimpath, the version ldflags, -s
// -w), and runs them from their archives: both say the release's version.
func TestReleaseBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds locus-scheduler and kubectl-locus")
	}
	c := testConfig(t, "v0.9.1", host)
	start := time.Now()
	if err := Release(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	t.Logf("release for %s in %s", host, time.Since(start).Round(time.Second))
	rel := checkRelease(t, c)

	kube, err := goOutput(context.Background(), root, "list", "-m", "-f", "{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}", "k8s.io/kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	for cmd, args := range map[string][]string{locusScheduler: {"--version"}, kubectlLocus: {"version"}} {
		// How it was built.
		info, err := buildinfo.Read(bytes.NewReader(rel.binary(t, cmd, host)))
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if info.Path != "locus.dev/locus/cmd/"+cmd {
			t.Errorf("%s is %s", cmd, info.Path)
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		for k, v := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": host.OS, "GOARCH": host.Arch} {
			if settings[k] != v {
				t.Errorf("%s built with %s=%q, want %q", cmd, k, settings[k], v)
			}
		}
		// With -trimpath the build information leaves out -ldflags: -s -w
		// shows in the symbol table missing, the version stamp below.
		if host.OS == "linux" {
			f, err := elf.NewFile(bytes.NewReader(rel.binary(t, cmd, host)))
			if err != nil {
				t.Fatal(err)
			}
			if f.Section(".symtab") != nil {
				t.Errorf("%s has a symbol table: not stripped", cmd)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s has an ELF interpreter: not static", cmd)
				}
			}
		}

		out := rel.run(t, cmd, host, args...)
		want := fmt.Sprintf("%s %s (Kubernetes %s)\n", cmd, c.Version, kube)
		if out != want {
			t.Errorf("%s %s printed %q, want %q", cmd, strings.Join(args, " "), out, want)
		}
	}
}

// TestReleaseRefuses checks what Release will not do.
func TestReleaseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"git describe, not a version", func(c *Config) { c.Version = "9c707ca-dirty" }, "semantic version"},
		{"no leading v", func(c *Config) { c.Version = "1.2.3" }, "semantic version"},
		{"build metadata, no image tag", func(c *Config) { c.Version = "v1.2.3+abc" }, "semantic version"},
		{"a bad image repository", func(c *Config) { c.ImageRepo = "Registry/UPPER" }, "image"},
		{"a release URL that is no URL", func(c *Config) { c.ReleaseURL = "dist" }, "release URL"},
		{"binaries of another version", func(c *Config) {
			c.BinDir, c.LDFlags = "", "-X locus.dev/locus/pkg/version.version=v0.0.1"
		}, "do not set"},
		{"an output folder in use", func(c *Config) {
			if err := os.MkdirAll(c.Out, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(c.Out, "old"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t, "v1.0.0", host)
			c.BinDir = t.TempDir() // never read: each case fails before
			tc.change(&c)
			err := Release(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Release: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	for _, s := range []string{"", "linux", "linux/amd64,linux/amd64", "linux/arm/v7"} {
		if _, err := ParsePlatforms(s); err == nil {
			t.Errorf("ParsePlatforms(%q) accepted", s)
		}
	}
}

// release is what checkRelease read of a release.
type release struct {
	c        Config
	archives map[string]map[string]tarEntry // archive name -> entry name -> entry
}

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

// binary is cmd's binary for p, from its archive.
func (r *release) binary(t *testing.T, cmd string, p Platform) []byte {
	t.Helper()
	e, ok := r.archives[Archive(cmd, r.c.Version, p)][p.exe(cmd)]
	if !ok {
		t.Fatalf("no %s for %s", cmd, p)
	}
	return e.data
}

// run writes cmd's binary for p out of its archive and runs it.
func (r *release) run(t *testing.T, cmd string, p Platform, args ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), p.exe(cmd))
	if err := os.WriteFile(path, r.binary(t, cmd, p), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	run := exec.Command(path, args...)
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", cmd, args, err, stderr.String())
	}
	return stdout.String()
}

// checkRelease checks every artifact of c.
func checkRelease(t *testing.T, c Config) *release {
	t.Helper()
	r := &release{c: c, archives: map[string]map[string]tarEntry{}}

	// Exactly the artifacts, each in checksums.txt with its sha256.
	want := []string{Checksums, KrewManifest, InstallManifest(c.Version), CRDManifest(c.Version)}
	var linux []Platform
	for _, p := range c.Platforms {
		want = append(want, Archive(kubectlLocus, c.Version, p), Archive(locusScheduler, c.Version, p))
		if p.OS == "linux" {
			linux = append(linux, p)
		}
	}
	if len(linux) > 0 {
		want = append(want, ImageTarball(c.Version))
	}
	slices.Sort(want)
	entries, err := os.ReadDir(c.Out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds\n%v\nwant\n%v", c.Out, got, want)
	}
	sums := checkChecksums(t, c.Out, want)

	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Platforms {
		for _, cmd := range []string{kubectlLocus, locusScheduler} {
			name := Archive(cmd, c.Version, p)
			files := readTarGz(t, filepath.Join(c.Out, name))
			r.archives[name] = files
			var names []string
			for n, e := range files {
				names = append(names, n)
				if e.hdr.Typeflag != tar.TypeReg || !e.hdr.ModTime.Equal(c.Epoch) || e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.Uname != "" || e.hdr.Gname != "" {
					t.Errorf("%s: %s: type %c, time %s, owner %d:%d (%q:%q): want a file of %s owned by 0:0, no names",
						name, n, e.hdr.Typeflag, e.hdr.ModTime, e.hdr.Uid, e.hdr.Gid, e.hdr.Uname, e.hdr.Gname, c.Epoch)
				}
			}
			slices.Sort(names)
			if wantNames := []string{"LICENSE", p.exe(cmd)}; !slices.Equal(names, wantNames) {
				t.Errorf("%s holds %v, want %v", name, names, wantNames)
				continue
			}
			if lic := files["LICENSE"]; !bytes.Equal(lic.data, license) || lic.hdr.Mode != 0o644 {
				t.Errorf("%s: LICENSE (mode %o) is not the repository's LICENSE, 0644", name, lic.hdr.Mode)
			}
			bin := files[p.exe(cmd)]
			if bin.hdr.Mode != 0o755 {
				t.Errorf("%s: %s has mode %o, want 0755", name, p.exe(cmd), bin.hdr.Mode)
			}
			checkExecutable(t, name, bin.data, p)
		}
	}

	checkKrew(t, c, r, sums)
	checkManifests(t, c)
	if len(linux) > 0 {
		images := checkImage(t, c, linux)
		for _, p := range linux {
			if !bytes.Equal(images[p], r.binary(t, locusScheduler, p)) {
				t.Errorf("the %s image's %s is not the binary of %s", p, ImageBinary, Archive(locusScheduler, c.Version, p))
			}
		}
	}
	return r
}

// checkChecksums checks checksums.txt against the files of dir, and
// returns the sums by name.
func checkChecksums(t *testing.T, dir string, files []string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, Checksums))
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	var names []string
	line := regexp.MustCompile(`^([0-9a-f]{64})  (\S+)$`)
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("%s: line %q is not sha256sum's HEX  NAME", Checksums, l)
		}
		sums[m[2]] = m[1]
		names = append(names, m[2])
	}
	want := slices.DeleteFunc(slices.Clone(files), func(f string) bool { return f == Checksums })
	if !slices.Equal(names, want) {
		t.Errorf("%s lists %v, want %v", Checksums, names, want)
	}
	for name, sum := range sums {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: sha256 %x, %s says %s", name, got, Checksums, sum)
		}
	}
	return sums
}

func readTarGz(t *testing.T, path string) map[string]tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return readTar(t, path, zr)
}

func readTar(t *testing.T, name string, r io.Reader) map[string]tarEntry {
	t.Helper()
	files := map[string]tarEntry{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, dup := files[hdr.Name]; dup {
			t.Errorf("%s: %s twice", name, hdr.Name)
		}
		files[hdr.Name] = tarEntry{hdr, data}
	}
}

// checkExecutable checks that data is an executable for p.
func checkExecutable(t *testing.T, name string, data []byte, p Platform) {
	t.Helper()
	switch p.OS {
	case "linux":
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Errorf("%s: not an ELF executable: %v", name, err)
			return
		}
		if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.Arch]; f.Type != elf.ET_EXEC || f.Machine != want {
			t.Errorf("%s: ELF %s for %s, want an executable for %s", name, f.Type, f.Machine, want)
		}
	case "darwin":
		f, err := macho.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Errorf("%s: not a Mach-O executable: %v", name, err)
			return
		}
		if want := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[p.Arch]; f.Type != macho.TypeExec || f.Cpu != want {
			t.Errorf("%s: Mach-O %s for %s, want an executable for %s", name, f.Type, f.Cpu, want)
		}
	}
}

// The krew plugin manifest's types, as sigs.k8s.io/krew v0.4.3 declares
// them (pkg/index/types.go; the module is not imported, see krew.go):
// strict decoding into them refuses any field krew does not know.
type krewIndexPlugin struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Version          string              `json:"version,omitempty"`
		ShortDescription string              `json:"shortDescription,omitempty"`
		Description      string              `json:"description,omitempty"`
		Caveats          string              `json:"caveats,omitempty"`
		Homepage         string              `json:"homepage,omitempty"`
		Platforms        []krewIndexPlatform `json:"platforms,omitempty"`
	} `json:"spec"`
}

type krewIndexPlatform struct {
	URI      string                `json:"uri,omitempty"`
	Sha256   string                `json:"sha256,omitempty"`
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	Files    []struct {
		From string `json:"from,omitempty"`
		To   string `json:"to,omitempty"`
	} `json:"files"`
	Bin string `json:"bin"`
}

// checkKrew decodes the krew manifest, checks it as krew's
// validation.ValidatePlugin does (internal/index/validation), and installs
// each platform's archive as krew would: the platform whose selector
// matches, the archive of its uri with its sha256, its files moved, its bin.
func checkKrew(t *testing.T, c Config, r *release, sums map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.Out, KrewManifest))
	if err != nil {
		t.Fatal(err)
	}
	var p krewIndexPlugin
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("%s: %v", KrewManifest, err)
	}

	// validation.ValidatePlugin("locus", p).
	if p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin" || p.Name != "locus" {
		t.Errorf("%s is %s %s %q, want krew.googlecontainertools.github.com/v1alpha2 Plugin \"locus\"", KrewManifest, p.APIVersion, p.Kind, p.Name)
	}
	if s := p.Spec.ShortDescription; s == "" || strings.ContainsAny(s, "\r\n") {
		t.Errorf("short description %q: want one line", s)
	}
	if p.Spec.Version != c.Version || !semverRE.MatchString(p.Spec.Version) {
		t.Errorf("version %q, want %q", p.Spec.Version, c.Version)
	}
	if p.Spec.Homepage != c.SourceURL {
		t.Errorf("homepage %q, want %q", p.Spec.Homepage, c.SourceURL)
	}
	for _, pl := range p.Spec.Platforms {
		if pl.URI == "" || !regexp.MustCompile(`^[a-f0-9]{64}$`).MatchString(pl.Sha256) || pl.Bin == "" || len(pl.Files) == 0 {
			t.Errorf("platform %+v: want uri, sha256, bin and files", pl)
		}
		for _, f := range pl.Files {
			if f.From == "" || f.To == "" || f.To != filepath.Clean(f.To) {
				t.Errorf("platform %+v: file %+v", pl, f)
			}
		}
		if pl.Selector == nil || len(pl.Selector.MatchLabels) == 0 {
			t.Errorf("platform %+v: want a selector", pl)
			continue
		}
		for k := range pl.Selector.MatchLabels {
			if k != "os" && k != "arch" {
				t.Errorf("platform %+v: selector key %q, krew knows os and arch", pl, k)
			}
		}
	}

	if len(p.Spec.Platforms) != len(c.Platforms) {
		t.Errorf("%d krew platforms, want %d", len(p.Spec.Platforms), len(c.Platforms))
	}
	for _, want := range c.Platforms {
		// installation.matchPlatform: the first whose selector matches.
		var pl *krewIndexPlatform
		matches := 0
		for i := range p.Spec.Platforms {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Platforms[i].Selector)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Matches(labels.Set{"os": want.OS, "arch": want.Arch}) {
				if matches++; pl == nil {
					pl = &p.Spec.Platforms[i]
				}
			}
		}
		if matches != 1 {
			t.Errorf("%d krew platforms match %s, want 1", matches, want)
			continue
		}
		archive := Archive(kubectlLocus, c.Version, want)
		if pl.URI != c.ReleaseURL+"/"+archive {
			t.Errorf("%s: uri %s, want %s/%s", want, pl.URI, c.ReleaseURL, archive)
		}
		if pl.Sha256 != sums[archive] {
			t.Errorf("%s: sha256 %s, but %s's is %s", want, pl.Sha256, archive, sums[archive])
		}

		// Unpack and move the files (installation.moveFiles, the direct
		// moves that these are), then find the bin.
		extracted, installed := t.TempDir(), t.TempDir()
		for name, e := range r.archives[archive] {
			if err := os.WriteFile(filepath.Join(extracted, name), e.data, os.FileMode(e.hdr.Mode)); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range pl.Files {
			from := filepath.Join(extracted, filepath.FromSlash(f.From))
			to := filepath.Join(installed, filepath.FromSlash(f.To))
			if f.To == "." {
				to = filepath.Join(installed, filepath.Base(from))
			}
			if err := os.Rename(from, to); err != nil {
				t.Errorf("%s: krew's move of %+v: %v", want, f, err)
			}
		}
		fi, err := os.Stat(filepath.Join(installed, filepath.FromSlash(pl.Bin)))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s: bin %s after krew's moves: %v, mode %v", want, pl.Bin, err, fi)
		}
		if pl.Bin != want.exe(kubectlLocus) {
			t.Errorf("%s: bin %s, want %s", want, pl.Bin, want.exe(kubectlLocus))
		}
		if _, err := os.Stat(filepath.Join(installed, "LICENSE")); err != nil {
			t.Errorf("%s: LICENSE not installed: %v", want, err)
		}
	}
}

// readObjects decodes a YAML stream of Kubernetes objects.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if m == nil {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// key names an object: Kind namespace/name.
func key(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// kustomizationObjects reads the objects of the resources that
// manifests/DIR/kustomization.yaml lists, in its namespace if it sets one
// (on namespaced objects: those that already have a namespace, or are of a
// namespaced kind here).
func kustomizationObjects(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "manifests", dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Namespace string   `json:"namespace"`
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	namespaced := map[string]bool{"ServiceAccount": true, "Role": true, "RoleBinding": true, "Deployment": true, "PodDisruptionBudget": true, "ConfigMap": true}
	var objs []*unstructured.Unstructured
	for _, res := range k.Resources {
		for _, o := range readObjects(t, filepath.Join(root, "manifests", dir, res)) {
			if k.Namespace != "" && (o.GetNamespace() != "" || namespaced[o.GetKind()]) {
				o.SetNamespace(k.Namespace)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

// checkManifests checks the install manifest (the CRDs first, then every
// object of manifests/base and its ConfigMap, the Deployment on the
// release's image) and the CRD manifest (the same CRDs).
func checkManifests(t *testing.T, c Config) {
	t.Helper()
	install := readObjects(t, filepath.Join(c.Out, InstallManifest(c.Version)))
	crds := readObjects(t, filepath.Join(c.Out, CRDManifest(c.Version)))

	wantCRDs := kustomizationObjects(t, "crds")
	if len(wantCRDs) != 3 {
		t.Fatalf("manifests/crds has %d objects, want the 3 CRDs", len(wantCRDs))
	}
	base := kustomizationObjects(t, "base")
	config, err := os.ReadFile(filepath.Join(root, "manifests/base/scheduler-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "locus-scheduler-config", Namespace: "kube-system"},
		Data:       map[string]string{"scheduler-config.yaml": string(config)},
	}
	cmObj, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(cm)
	if err != nil {
		t.Fatal(err)
	}
	base = append(base, &unstructured.Unstructured{Object: cmObj})

	// The same objects, CRDs first.
	var gotKeys, wantKeys []string
	for _, o := range install {
		gotKeys = append(gotKeys, key(o))
	}
	for _, o := range append(slices.Clone(wantCRDs), base...) {
		wantKeys = append(wantKeys, key(o))
	}
	if !slices.Equal(slices.Sorted(slices.Values(gotKeys)), slices.Sorted(slices.Values(wantKeys))) {
		t.Errorf("%s holds\n%v\nwant\n%v", InstallManifest(c.Version), gotKeys, wantKeys)
	}
	for i, o := range install {
		if (o.GetKind() == "CustomResourceDefinition") != (i < len(wantCRDs)) {
			t.Errorf("%s: %s at %d: want the %d CRDs first", InstallManifest(c.Version), key(o), i, len(wantCRDs))
		}
	}
	byKey := map[string]*unstructured.Unstructured{}
	for _, o := range install {
		byKey[key(o)] = o
	}

	// Labelled with the release; only the CRDs chosen by the selector that
	// removing locus keeps them with.
	keep, err := labels.Parse(labelComponent + "=" + componentCRDs)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range install {
		l := o.GetLabels()
		if l[labelPartOf] != "locus" || l[labelVersion] != c.Version {
			t.Errorf("%s: labels %v, want %s=locus and %s=%s", key(o), l, labelPartOf, labelVersion, c.Version)
		}
		if keep.Matches(labels.Set(l)) != (o.GetKind() == "CustomResourceDefinition") {
			t.Errorf("%s: labels %v: %s selects exactly the CRDs", key(o), l, keep)
		}
	}

	// The removal that the manifest's header gives deletes all but the
	// CRDs: kubectl delete -f FILE -l SELECTOR reads FILE with cli-runtime's
	// resource builder, which keeps the objects SELECTOR matches.
	head, err := os.ReadFile(filepath.Join(c.Out, InstallManifest(c.Version)))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^#\s+kubectl delete -f (\S+) -l (\S+)$`).FindSubmatch(head)
	if m == nil || string(m[1]) != InstallManifest(c.Version) {
		t.Errorf("%s: no kubectl delete -f %[1]s -l SELECTOR in its header", InstallManifest(c.Version))
	} else {
		infos, err := resource.NewLocalBuilder().Unstructured().
			FilenameParam(false, &resource.FilenameOptions{Filenames: []string{filepath.Join(c.Out, InstallManifest(c.Version))}}).
			LabelSelectorParam(string(m[2])).Flatten().Do().Infos()
		if err != nil {
			t.Fatal(err)
		}
		var deleted, want []string
		for _, info := range infos {
			deleted = append(deleted, key(info.Object.(*unstructured.Unstructured)))
		}
		for _, o := range install {
			if o.GetKind() != "CustomResourceDefinition" {
				want = append(want, key(o))
			}
		}
		if !slices.Equal(deleted, want) {
			t.Errorf("kubectl delete -f %s -l %s deletes\n%v\nwant\n%v", m[1], m[2], deleted, want)
		}
	}

	// The CRDs as manifests/crds has them, here and in the CRD manifest.
	if len(crds) != len(wantCRDs) {
		t.Errorf("%s holds %d objects, want %d CRDs", CRDManifest(c.Version), len(crds), len(wantCRDs))
	}
	for i, want := range wantCRDs {
		got := byKey[key(want)]
		if got == nil || !reflect.DeepEqual(got.Object["spec"], want.Object["spec"]) {
			t.Errorf("%s: %s is not manifests/crds'", InstallManifest(c.Version), key(want))
		}
		if i < len(crds) && (key(crds[i]) != key(want) || got == nil || !reflect.DeepEqual(crds[i].Object, got.Object)) {
			t.Errorf("%s: %s is not %s's %s", CRDManifest(c.Version), key(crds[i]), InstallManifest(c.Version), key(want))
		}
	}

	// The ConfigMap holds the shipped configuration.
	if got := byKey[key(&unstructured.Unstructured{Object: cmObj})]; got == nil {
		t.Errorf("no ConfigMap %s", cm.Name)
	} else if data, _, _ := unstructured.NestedStringMap(got.Object, "data"); !reflect.DeepEqual(data, cm.Data) {
		t.Errorf("ConfigMap %s holds %v, want manifests/base/scheduler-config.yaml", cm.Name, data)
	}

	// The Deployment is the base's, on the release's image.
	var baseDep, dep appsv1.Deployment
	for _, o := range base {
		if o.GetKind() == "Deployment" {
			if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &baseDep); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := byKey["Deployment kube-system/locus-scheduler"]
	if got == nil {
		t.Fatal("no Deployment kube-system/locus-scheduler")
	}
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(got.Object, &dep); err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != c.ImageRepo+":"+c.Version {
		t.Errorf("the Deployment runs %s, want %s:%s", img, c.ImageRepo, c.Version)
	}
	baseDep.Spec.Template.Spec.Containers[0].Image = c.ImageRepo + ":" + c.Version
	if !reflect.DeepEqual(dep.Spec, baseDep.Spec) {
		t.Errorf("the Deployment's spec is not manifests/base's with the release's image:\n%+v\n%+v", dep.Spec, baseDep.Spec)
	}
	if sa := dep.Spec.Template.Spec.ServiceAccountName; byKey["ServiceAccount kube-system/"+sa] == nil {
		t.Errorf("the Deployment runs as ServiceAccount %s, not in the manifest", sa)
	}
}

// checkImage loads the OCI image layout tarball with go-containerregistry,
// checks every digest and size (validate.Index), the platforms, each
// image's configuration and files, and returns each platform's binary.
func checkImage(t *testing.T, c Config, platforms []Platform) map[Platform][]byte {
	t.Helper()
	name := ImageTarball(c.Version)
	f, err := os.Open(filepath.Join(c.Out, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	for n, e := range readTar(t, name, f) {
		if !e.hdr.ModTime.Equal(c.Epoch) || !filepath.IsLocal(n) {
			t.Errorf("%s: %s (time %s)", name, n, e.hdr.ModTime)
			continue
		}
		path := filepath.Join(dir, filepath.FromSlash(n))
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				err = os.WriteFile(path, e.data, 0o644)
			}
		default:
			t.Errorf("%s: %s of type %c", name, n, e.hdr.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("%s: not an OCI image layout: %v", name, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topManifest.Manifests) != 1 {
		t.Fatalf("%s: index.json lists %d manifests, want the image index", name, len(topManifest.Manifests))
	}
	desc := topManifest.Manifests[0]
	if desc.MediaType != types.OCIImageIndex || desc.Annotations[annotationRefName] != c.Version || desc.Annotations[annotationImageName] != c.ImageRepo+":"+c.Version {
		t.Errorf("%s: index.json lists %s with annotations %v: want an OCI image index named %s:%s", name, desc.MediaType, desc.Annotations, c.ImageRepo, c.Version)
	}
	idx, err := top.ImageIndex(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || im.Annotations[annotationVersion] != c.Version {
		t.Errorf("%s: index %s, annotations %v", name, im.MediaType, im.Annotations)
	}

	bins := map[Platform][]byte{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Errorf("%s: manifest %s has no platform", name, d.Digest)
			continue
		}
		plat := Platform{d.Platform.OS, d.Platform.Architecture}
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: %s is a %s", name, plat, d.MediaType)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != d.Platform.OS || cf.Architecture != d.Platform.Architecture || cf.Variant != d.Platform.Variant {
			t.Errorf("%s: %s's configuration is for %s/%s/%s", name, d.Platform, cf.OS, cf.Architecture, cf.Variant)
		}
		if cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/locus-scheduler"}) {
			t.Errorf("%s: %s runs %v as %q, want /usr/local/bin/locus-scheduler as 65532:65532", name, plat, cf.Config.Entrypoint, cf.Config.User)
		}
		for k, v := range map[string]string{
			"org.opencontainers.image.version":  c.Version,
			"org.opencontainers.image.source":   c.SourceURL,
			"org.opencontainers.image.licenses": "Apache-2.0",
			"org.opencontainers.image.revision": c.Revision,
		} {
			if cf.Config.Labels[k] != v {
				t.Errorf("%s: %s: label %s=%q, want %q", name, plat, k, cf.Config.Labels[k], v)
			}
		}
		if !cf.Created.Equal(c.Epoch) {
			t.Errorf("%s: %s created %s, want %s", name, plat, cf.Created, c.Epoch)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			if mt, _ := l.MediaType(); mt != types.OCILayer {
				t.Errorf("%s: %s: a layer of %s", name, plat, mt)
			}
		}

		// The file system, layers applied (names cleaned: "tmp", not "tmp/").
		rc := mutate.Extract(img)
		files := readTar(t, name+" "+plat.String(), rc)
		rc.Close()
		bin, ok := files[ImageBinary[1:]]
		if !ok || bin.hdr.Typeflag != tar.TypeReg || bin.hdr.Mode != 0o755 || bin.hdr.Uid != 0 {
			t.Errorf("%s: %s: no %s, 0755, of root", name, plat, ImageBinary)
		} else {
			checkExecutable(t, name+" "+plat.String(), bin.data, plat)
			bins[plat] = bin.data
		}
		if passwd := files["etc/passwd"]; !strings.Contains(string(passwd.data), "\nnonroot:x:65532:65532:") {
			t.Errorf("%s: %s: /etc/passwd %q has no nonroot 65532", name, plat, passwd.data)
		}
		if tmp := files["tmp"]; tmp.hdr == nil || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode != 0o1777 {
			t.Errorf("%s: %s: no /tmp of mode 1777", name, plat)
		}
	}
	var got []Platform
	for p := range bins {
		got = append(got, p)
	}
	less := func(a, b Platform) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(got, less)
	want := slices.SortedFunc(slices.Values(platforms), less)
	if !slices.Equal(got, want) {
		t.Errorf("%s: images for %v, want %v", name, got, want)
	}
	return bins
}
