package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image, as the Dockerfile builds it: the static binary on a non-root
// base (here an empty one with the users of distroless's nonroot).
const (
	ImageBinary = "/usr/local/bin/locus-scheduler"
	ImageUser   = "65532:65532"
)

// imageBinary is the locus-scheduler binary of a linux platform.
type imageBinary struct {
	platform Platform
	data     []byte
}

// The OCI annotation keys (image-spec annotations.md), used as labels of
// the image's configuration and annotations of its manifests and index.
const (
	annotationVersion     = "org.opencontainers.image.version"
	annotationSource      = "org.opencontainers.image.source"
	annotationLicenses    = "org.opencontainers.image.licenses"
	annotationTitle       = "org.opencontainers.image.title"
	annotationDescription = "org.opencontainers.image.description"
	annotationRevision    = "org.opencontainers.image.revision"
	annotationCreated     = "org.opencontainers.image.created"
	annotationRefName     = "org.opencontainers.image.ref.name"
	// containerd's (and so docker's and nerdctl's) name of an imported image.
	annotationImageName = "io.containerd.image.name"
)

func (c *Config) imageLabels() map[string]string {
	l := map[string]string{
		annotationVersion:     c.Version,
		annotationSource:      c.SourceURL,
		annotationLicenses:    "Apache-2.0",
		annotationTitle:       locusScheduler,
		annotationDescription: "kube-scheduler with locus's Compliance, DataLocality and BatchQuota plugins",
		annotationCreated:     c.Epoch.Format("2006-01-02T15:04:05Z"),
	}
	if c.Revision != "" {
		l[annotationRevision] = c.Revision
	}
	return l
}

// baseFiles are the files of the base layer: the users and groups of
// distroless's static image (nonroot is 65532), the nonroot home, and /tmp.
func baseFiles() []file {
	return []file{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: 65532, gid: 65532},
		{name: "root/", mode: 0o700},
		{name: "tmp/", mode: 0o1777},
	}
}

// layer is an OCI layer (gzip) of files.
func layer(c *Config, files ...file) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := writeTar(&buf, c.Epoch, files...); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// platformImage is the image of one linux platform.
func platformImage(c *Config, b imageBinary) (v1.Image, *v1.Platform, error) {
	base, err := layer(c, baseFiles()...)
	if err != nil {
		return nil, nil, err
	}
	bin, err := layer(c,
		file{name: "usr/", mode: 0o755},
		file{name: "usr/local/", mode: 0o755},
		file{name: "usr/local/bin/", mode: 0o755},
		file{name: ImageBinary[1:], mode: 0o755, data: b.data})
	if err != nil {
		return nil, nil, err
	}
	plat := &v1.Platform{OS: b.platform.OS, Architecture: b.platform.Arch}
	if plat.Architecture == "arm64" {
		plat.Variant = "v8" // as registries' arm64 images say
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: plat.Architecture,
		OS:           plat.OS,
		Variant:      plat.Variant,
		Created:      v1.Time{Time: c.Epoch},
		Config: v1.Config{
			User:       ImageUser,
			Entrypoint: []string{ImageBinary},
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			WorkingDir: "/",
			Labels:     c.imageLabels(),
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, nil, err
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: c.Epoch}, CreatedBy: "locus release: users root, nobody, nonroot (65532); /home/nonroot, /tmp", Comment: "base"}},
		mutate.Addendum{Layer: bin, History: v1.History{Created: v1.Time{Time: c.Epoch}, CreatedBy: "locus release: COPY locus-scheduler " + ImageBinary}},
	)
	if err != nil {
		return nil, nil, err
	}
	return mutate.Annotations(img, c.imageLabels()).(v1.Image), plat, nil
}

// writeImage writes the image index of the linux platforms as an OCI image
// layout, in a tarball (docker load, podman load, skopeo's oci-archive:,
// crane push after untar).
func writeImage(c *Config, bins []imageBinary) error {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range bins {
		img, plat, err := platformImage(c, b)
		if err != nil {
			return fmt.Errorf("%s: %w", b.platform, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: plat},
		})
	}
	idx = mutate.Annotations(idx, c.imageLabels()).(v1.ImageIndex)

	dir, err := os.MkdirTemp("", "locus-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annotationRefName:   c.Version,
		annotationImageName: c.ImageRepo + ":" + c.Version,
	})); err != nil {
		return err
	}
	return tarFolder(c, dir, filepath.Join(c.Out, ImageTarball(c.Version)))
}

// tarFolder writes the files under dir, by name, into the tarball out.
func tarFolder(c *Config, dir, out string) error {
	var files []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			files = append(files, file{name: rel + "/", mode: 0o755})
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, file{name: rel, mode: 0o644, data: data})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(files, func(a, b file) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := writeTar(f, c.Epoch, files...); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
