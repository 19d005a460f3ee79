// Command release builds every artifact of a locus release into one folder,
// offline (only the Go module proxy, for modules not yet in the cache):
//
//   - kubectl-locus_VERSION_OS_ARCH.tar.gz and locus-scheduler_VERSION_OS_ARCH.tar.gz
//     for each platform: the static binary (CGO_ENABLED=0, -trimpath, the
//     version ldflags plus -s -w) and LICENSE;
//   - locus.yaml, the krew plugin manifest of kubectl-locus;
//   - locus-VERSION.yaml, the install manifest (the CRDs, then manifests/base
//     with the image IMAGE_REPO:VERSION), and locus-crds-VERSION.yaml, the
//     CRDs alone, both built with kustomize's krusty;
//   - locus-scheduler_VERSION_oci.tar, the scheduler image as an OCI image
//     layout: an index over the linux platforms, each image the binary on an
//     empty base with a non-root user (no container engine, no base pulled);
//   - checksums.txt, the sha256 of every other file, as sha256sum writes it.
//
// make release VERSION=vX.Y.Z runs it. Every file is reproducible: archive
// and layer entries carry the time -source-date-epoch (the commit's time in
// make release), and none a user name or a local path.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// The commands a release ships.
const (
	kubectlLocus   = "kubectl-locus"
	locusScheduler = "locus-scheduler"
)

// DefaultPlatforms are the platforms of a release; the image is built for
// the linux ones.
const DefaultPlatforms = "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64"

// Platform is a GOOS/GOARCH pair.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// exe is the file name of command cmd on p.
func (p Platform) exe(cmd string) string {
	if p.OS == "windows" {
		return cmd + ".exe"
	}
	return cmd
}

// ParsePlatforms reads "os/arch,os/arch".
func ParsePlatforms(s string) ([]Platform, error) {
	var ps []Platform
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		os, arch, ok := strings.Cut(f, "/")
		if !ok || os == "" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("platform %q: want OS/ARCH", f)
		}
		p := Platform{os, arch}
		if slices.Contains(ps, p) {
			return nil, fmt.Errorf("platform %s given twice", p)
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, errors.New("no platform given")
	}
	return ps, nil
}

// Config says what to release and where.
type Config struct {
	// Version is the release, a semantic version with a leading v.
	Version string
	// LDFlags are the -ldflags of every build, without -s -w (added); when
	// empty, they stamp Version and the k8s.io/kubernetes version of go.mod
	// as the Makefile's LDFLAGS do.
	LDFlags string
	// Platforms to build; the image holds the linux ones.
	Platforms []Platform
	// ImageRepo is the image's repository; the install manifest runs
	// ImageRepo:Version.
	ImageRepo string
	// ReleaseURL is where the archives are downloaded from (krew's uri is
	// ReleaseURL/ARCHIVE).
	ReleaseURL string
	// SourceURL is the project's home (the image's source label, krew's
	// homepage).
	SourceURL string
	// Revision is the commit released (the image's revision label); optional.
	Revision string
	// Epoch is the time of every archive entry, image layer entry, and the
	// image's creation.
	Epoch time.Time
	// Root is the module's root folder (LICENSE, manifests/, cmd/).
	Root string
	// Out is the folder of the artifacts: created, and it must be empty.
	Out string
	// BinDir, when set, holds the binaries (BinDir/OS_ARCH/COMMAND) instead
	// of building them: for tests, and for binaries built elsewhere.
	BinDir string
	// Log receives progress; nil for none.
	Log io.Writer
}

// semverRE is semver.org's grammar with a leading v.
var semverRE = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$`)

func (c *Config) validate() error {
	if !semverRE.MatchString(c.Version) {
		// No build metadata (+...): an image tag cannot hold a "+".
		return fmt.Errorf("version %q: want a semantic version with a leading v and no build metadata, e.g. v0.1.0 (make release VERSION=v0.1.0)", c.Version)
	}
	if _, err := name.NewTag(c.ImageRepo+":"+c.Version, name.StrictValidation); err != nil {
		return fmt.Errorf("image %s:%s: %w", c.ImageRepo, c.Version, err)
	}
	if !strings.HasPrefix(c.ReleaseURL, "https://") && !strings.HasPrefix(c.ReleaseURL, "http://") {
		return fmt.Errorf("release URL %q: want http(s)://", c.ReleaseURL)
	}
	if len(c.Platforms) == 0 {
		return errors.New("no platform given")
	}
	if c.Out == "" || c.Root == "" {
		return errors.New("no output or root folder given")
	}
	return nil
}

func (c *Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// Archive names the archive of cmd on p.
func Archive(cmd, version string, p Platform) string {
	return fmt.Sprintf("%s_%s_%s_%s.tar.gz", cmd, version, p.OS, p.Arch)
}

// The names of the other artifacts.
func InstallManifest(version string) string { return "locus-" + version + ".yaml" }
func CRDManifest(version string) string     { return "locus-crds-" + version + ".yaml" }
func ImageTarball(version string) string    { return locusScheduler + "_" + version + "_oci.tar" }

const (
	KrewManifest = "locus.yaml"
	Checksums    = "checksums.txt"
)

// Release builds every artifact into c.Out.
func Release(ctx context.Context, c Config) error {
	if err := c.validate(); err != nil {
		return err
	}
	if entries, err := os.ReadDir(c.Out); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s is not empty: remove it first (make release does)", c.Out)
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return err
	}
	license, err := os.ReadFile(filepath.Join(c.Root, "LICENSE"))
	if err != nil {
		return err
	}

	bins := c.BinDir
	if bins == "" {
		tmp, err := os.MkdirTemp("", "locus-release-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := build(ctx, &c, tmp); err != nil {
			return err
		}
		bins = tmp
	}
	binPath := func(p Platform, cmd string) string { return filepath.Join(bins, p.OS+"_"+p.Arch, p.exe(cmd)) }

	var kubectlArchives []krewArchive
	var imageBins []imageBinary
	for _, p := range c.Platforms {
		for _, cmd := range []string{kubectlLocus, locusScheduler} {
			bin, err := os.ReadFile(binPath(p, cmd))
			if err != nil {
				return err
			}
			archive := Archive(cmd, c.Version, p)
			sum, err := writeArchive(filepath.Join(c.Out, archive), c.Epoch,
				file{name: p.exe(cmd), mode: 0o755, data: bin},
				file{name: "LICENSE", mode: 0o644, data: license})
			if err != nil {
				return fmt.Errorf("%s: %w", archive, err)
			}
			c.logf("wrote %s", archive)
			if cmd == kubectlLocus {
				kubectlArchives = append(kubectlArchives, krewArchive{p, archive, sum})
			}
			if cmd == locusScheduler && p.OS == "linux" {
				imageBins = append(imageBins, imageBinary{p, bin})
			}
		}
	}

	if err := writeKrewManifest(&c, kubectlArchives); err != nil {
		return err
	}
	c.logf("wrote %s", KrewManifest)
	if err := writeManifests(&c); err != nil {
		return err
	}
	c.logf("wrote %s and %s", InstallManifest(c.Version), CRDManifest(c.Version))
	if len(imageBins) == 0 {
		c.logf("no linux platform: no image")
	} else {
		if err := writeImage(&c, imageBins); err != nil {
			return fmt.Errorf("image: %w", err)
		}
		c.logf("wrote %s", ImageTarball(c.Version))
	}
	if err := writeChecksums(c.Out); err != nil {
		return err
	}
	c.logf("wrote %s", Checksums)
	return nil
}

// build cross-compiles both commands for every platform into
// dir/OS_ARCH/.
func build(ctx context.Context, c *Config, dir string) error {
	ldflags := c.LDFlags
	if ldflags == "" {
		kube, err := goOutput(ctx, c.Root, "list", "-m", "-f", "{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}", "k8s.io/kubernetes")
		if err != nil {
			return err
		}
		ldflags = "-X locus.dev/locus/pkg/version.version=" + c.Version + " -X k8s.io/component-base/version.gitVersion=" + kube
	}
	// A release whose binaries say another version is worse than none.
	if m := regexp.MustCompile(`locus\.dev/locus/pkg/version\.version=(\S*)`).FindStringSubmatch(ldflags); m == nil || m[1] != c.Version {
		return fmt.Errorf("ldflags %q do not set locus.dev/locus/pkg/version.version=%s", ldflags, c.Version)
	}
	for _, p := range c.Platforms {
		out := filepath.Join(dir, p.OS+"_"+p.Arch)
		c.logf("building %s and %s for %s", kubectlLocus, locusScheduler, p)
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags+" -s -w", "-o", out+string(filepath.Separator),
			"./cmd/"+kubectlLocus, "./cmd/"+locusScheduler)
		cmd.Dir = c.Root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building for %s: %w", p, err)
		}
		c.logf("built for %s in %s", p, time.Since(start).Round(time.Second))
	}
	return nil
}

func goOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// writeChecksums writes the sha256 of every file in dir, by name, as
// sha256sum does ("HEX  NAME").
func writeChecksums(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range entries { // sorted by name
		if e.Name() == Checksums || !e.Type().IsRegular() {
			continue
		}
		sum, err := fileSHA256(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, e.Name())
	}
	return os.WriteFile(filepath.Join(dir, Checksums), []byte(b.String()), 0o644)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// moduleRoot is the folder of the go.mod that the go command uses here.
func moduleRoot() (string, error) {
	gomod, err := goOutput(context.Background(), ".", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("release: ")
	var (
		c         Config
		platforms string
		epoch     string
	)
	flag.StringVar(&c.Version, "version", "", "the release, e.g. v0.1.0 (required)")
	flag.StringVar(&c.LDFlags, "ldflags", "", "-ldflags of every build, -s -w added (default: the version stamps of the Makefile's LDFLAGS)")
	flag.StringVar(&platforms, "platforms", DefaultPlatforms, "OS/ARCH,... to build; the image holds the linux ones")
	flag.StringVar(&c.ImageRepo, "image-repo", "ghcr.io/locus-dev/locus-scheduler", "the image's repository; the install manifest runs IMAGE_REPO:VERSION")
	flag.StringVar(&c.SourceURL, "source-url", "https://github.com/locus-dev/locus", "the project's home: the image's source label and krew's homepage")
	flag.StringVar(&c.ReleaseURL, "release-url", "", "where the archives are downloaded from (default SOURCE_URL/releases/download/VERSION)")
	flag.StringVar(&c.Revision, "revision", "", "the commit released, for the image's revision label")
	flag.StringVar(&epoch, "source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "seconds since 1970 of every file's time (default $SOURCE_DATE_EPOCH, else 0)")
	flag.StringVar(&c.Out, "out", "dist", "the folder of the artifacts (must be empty or missing)")
	flag.StringVar(&c.BinDir, "bin-dir", "", "take the binaries from BIN_DIR/OS_ARCH/COMMAND instead of building them")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("unexpected arguments %q", flag.Args())
	}

	var err error
	if c.Platforms, err = ParsePlatforms(platforms); err != nil {
		log.Fatal(err)
	}
	if c.ReleaseURL == "" {
		c.ReleaseURL = strings.TrimSuffix(c.SourceURL, "/") + "/releases/download/" + c.Version
	}
	c.ReleaseURL = strings.TrimSuffix(c.ReleaseURL, "/")
	secs := int64(0)
	if epoch != "" {
		if secs, err = strconv.ParseInt(epoch, 10, 64); err != nil {
			log.Fatalf("source date epoch %q: %v", epoch, err)
		}
	}
	c.Epoch = time.Unix(secs, 0).UTC()
	if c.Root, err = moduleRoot(); err != nil {
		log.Fatal(err)
	}
	c.Log = os.Stderr
	if err := Release(context.Background(), c); err != nil {
		log.Fatal(err)
	}
	c.logf("release %s in %s (%s, Go %s)", c.Version, c.Out, strings.Join(strings.Fields(platforms), ""), runtime.Version())
}
