package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/lazylayer/lazylayer/internal/localregistry"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/internal/tooltest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestPodmanPullsConvertedImages pulls the images lazylayer convert
// made, as eStargz and as zstd:chunked, with podman 4.3 into a vfs store
// (so whole, as a runtime that does not lazy-load pulls them), and
// compares the root file system podman unpacked with the source's.
func TestPodmanPullsConvertedImages(t *testing.T) {
	pm := newPodmanStore(t, "vfs", false)
	reg := startRegistry(t)
	src, _ := convertSource(t, reg, bothFormats...)
	for _, f := range bothFormats {
		t.Run(f.tag, func(t *testing.T) {
			ref := reg.Host() + "/e2e/app:" + f.tag
			pm.run(t, "pull", "--quiet", "--tls-verify=false", ref)
			dir := strings.TrimSpace(pm.run(t, "image", "mount", ref))
			compareRootfs(t, "podman (vfs), "+f.flag, f.rootfs(t, dir), src.rootfs)
		})
	}
}

// TestPodmanPullsConvertedImagePartially pulls the zstd:chunked image
// lazylayer convert made with podman 4.3 into an overlay store with
// partial pulls enabled, through a proxy that logs what it asks for:
//
//   - into an empty store, every layer comes in ranged requests, its TOC
//     asked for alone, none whole;
//   - then a second converted image, whose bottom layer differs from the
//     first's by one small file, costs for that layer its TOC and that
//     file's chunk: a small part of the blob;
//
// and each time the root file system is the source's, as far as podman
// 4.3's partial pulls keep it (see partialPullView).
func TestPodmanPullsConvertedImagePartially(t *testing.T) {
	pm := newPodman(t)
	reg := startRegistry(t)
	px := startProxy(t, reg.URL())
	src, ll := convertSource(t, reg, zstdChunked)
	layers := sourceLayers()
	layers[0] = append(layers[0], tartest.Entry{
		Header:  &tar.Header{Typeflag: tar.TypeReg, Name: "etc/release", Mode: 0o644, Size: 3, Format: tar.FormatPAX},
		Content: []byte("v2\n"),
	})
	src2 := pushSource(t, reg, "e2e/src", "v2", layers)
	ll.convert(t, src2.ref, reg.Host()+"/e2e/app:v2", "--format", zstdChunked.flag)

	t.Run("empty store", func(t *testing.T) {
		reqs, m := pm.pullLogged(t, px, reg, "e2e/app:"+zstdChunked.tag)
		for i, l := range m.Layers {
			_, f, err := zstdchunked.ParseAnnotations(l.Annotations)
			if err != nil {
				t.Fatal(err)
			}
			tocRange := fmt.Sprintf("bytes=%d-%d", f.TOCOffset, f.TOCOffset+f.TOCLength-1)
			tocAsked := false
			for _, r := range reqs[l.Digest] {
				tocAsked = tocAsked || r.Range == tocRange
				if r.ranges() == 0 {
					t.Errorf("layer %d: a %s without Range: the layer was pulled whole", i, r.Method)
				}
			}
			if !tocAsked {
				t.Errorf("layer %d: no request for its TOC alone (%s)", i, tocRange)
			}
		}
		compareRootfs(t, "podman (overlay, partial), zstd:chunked", partialPullView(zstdChunked.rootfs(t, pm.mountCopy(t, px.host+"/e2e/app:"+zstdChunked.tag))), partialPullView(src.rootfs))
	})

	t.Run("files already in the store", func(t *testing.T) {
		// podman 4.3 (containers/storage 1.43) copies a file the store
		// already has from a layer it picks at random among those with
		// that content, and sometimes opens there the path the new layer
		// gives it, which that layer lacks ("open ... under the rootfs:
		// no such file or directory" in its debug log); it then pulls the
		// layer whole. Such a pull is undone and tried again.
		var reqs map[digest.Digest][]request
		var m ocispec.Manifest
		for attempt := 1; ; attempt++ {
			reqs, m = pm.pullLogged(t, px, reg, "e2e/app:v2")
			if !pulledWhole(reqs) || attempt == 5 {
				break
			}
			t.Logf("attempt %d: podman fell back to a whole pull; removing the image and pulling again", attempt)
			pm.run(t, "rmi", px.host+"/e2e/app:v2")
		}
		for i, l := range m.Layers {
			var fetched int64
			for _, r := range reqs[l.Digest] {
				fetched += r.Bytes
				if r.ranges() == 0 {
					t.Errorf("layer %d: a %s without Range: the layer was pulled whole", i, r.Method)
				}
			}
			if i == 0 && fetched > l.Size/10 {
				t.Errorf("layer 0: %d bytes fetched of %d: want its TOC and one small file's chunk", fetched, l.Size)
			}
		}
		compareRootfs(t, "podman (overlay, partial), zstd:chunked", partialPullView(zstdChunked.rootfs(t, pm.mountCopy(t, px.host+"/e2e/app:v2"))), partialPullView(src2.rootfs))
	})
}

// pullLogged pulls repoRef (repo:tag) of reg through the proxy and
// returns the manifest pulled and the requests for each of its layers.
func (p *podman) pullLogged(t *testing.T, px *proxy, reg *localregistry.Registry, repoRef string) (map[digest.Digest][]request, ocispec.Manifest) {
	t.Helper()
	repo, tag, _ := strings.Cut(repoRef, ":")
	_, m := getManifest(t, reg, repo, tag)
	px.take()
	p.run(t, "pull", "--quiet", "--tls-verify=false", px.host+"/"+repoRef)
	log := px.take()
	reqs := map[digest.Digest][]request{}
	for i, l := range m.Layers {
		for _, r := range log {
			if strings.HasSuffix(r.Path, "/blobs/"+l.Digest.String()) {
				reqs[l.Digest] = append(reqs[l.Digest], r)
			}
		}
		t.Logf("layer %d, %d bytes:%s", i, l.Size, describeRequests(reqs[l.Digest]))
	}
	return reqs, m
}

// pulledWhole reports whether any layer was fetched without a Range.
func pulledWhole(reqs map[digest.Digest][]request) bool {
	for _, rs := range reqs {
		for _, r := range rs {
			if r.ranges() == 0 {
				return true
			}
		}
	}
	return false
}

// partialPullView returns r as podman 4.3's partial pulls can make it:
// containers/storage 1.43 creates no devices or fifos from a TOC ("Ignore"
// in its ApplyDiff), and its TOC reader looks for the keys "UID", "GID"
// and "ModTime" where the format, as its own writer and ours spell it,
// has "uid", "gid" and "modtime" (fixed in later releases), so every file
// it makes is root's and modified at the time of the pull.
func partialPullView(r rootfs) rootfs {
	out := rootfs{}
	for p, n := range r {
		switch n.kind {
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice, fs.ModeNamedPipe:
			continue
		}
		c := *n
		c.uid, c.gid, c.mtime = 0, 0, 0
		out[p] = &c
	}
	return out
}

// mountCopy mounts image ref and copies its root file system, with
// every attribute, into a new temporary directory, which it returns: the
// mount lives only as long as the sandbox's mount namespace.
func (p *podman) mountCopy(t *testing.T, ref string) string {
	t.Helper()
	dst := t.TempDir()
	const script = `ref=$1 dst=$2; shift 2; dir=$("$@" image mount "$ref") && cp -a -- "$dir/." "$dst"`
	p.box.Run(t, p.env, "/bin/sh", append([]string{"-c", script, "sh", ref, dst, p.path}, p.args()...)...)
	return dst
}

// take returns every request logged since the last call, and forgets
// them.
func (p *proxy) take() []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	log := p.log
	p.log = nil
	return log
}

// TestCtrPullsConvertedImages pulls the images lazylayer convert made,
// as eStargz and as zstd:chunked, with containerd's ctr 1.6 into
// containerd's native snapshotter, and compares the root file system
// containerd unpacked with the source's.
func TestCtrPullsConvertedImages(t *testing.T) {
	c := startContainerdFor(t, tooltest.Look(t, "ctr", "containerd"), true)
	reg := startRegistry(t)
	src, _ := convertSource(t, reg, bothFormats...)
	for _, f := range bothFormats {
		t.Run(f.tag, func(t *testing.T) {
			ref := reg.Host() + "/e2e/app:" + f.tag
			if _, err := c.run(t, nil, "images", "pull", "--plain-http", "--snapshotter", "native", ref); err != nil {
				t.Fatal(err)
			}
			_, m := getManifest(t, reg, "e2e/app", f.tag)
			var config ocispec.Image
			if err := json.Unmarshal(getBlob(t, reg, "e2e/app", m.Config.Digest), &config); err != nil {
				t.Fatal(err)
			}
			// A snapshot on top of the image's: the native snapshotter
			// makes it a copy of the image's root file system and names
			// the directory in the bind mount it prints.
			out, err := c.run(t, nil, "snapshots", "--snapshotter", "native", "prepare", "--mounts", "e2e-"+f.tag, chainID(config.RootFS.DiffIDs).String())
			if err != nil {
				t.Fatal(err)
			}
			var mounts []struct{ Type, Source string }
			if err := json.Unmarshal([]byte(out), &mounts); err != nil || len(mounts) != 1 || mounts[0].Type != "bind" {
				t.Fatalf("ctr snapshots prepare --mounts printed %q (%v), want one bind mount", out, err)
			}
			compareRootfs(t, "ctr (native), "+f.flag, f.rootfs(t, mounts[0].Source), src.rootfs)
		})
	}
}

// chainID returns the ChainID of the layers with diffIDs, which names
// their snapshot in containerd.
func chainID(diffIDs []digest.Digest) digest.Digest {
	var id digest.Digest
	for i, d := range diffIDs {
		if i == 0 {
			id = d
			continue
		}
		id = digest.FromString(id.String() + " " + d.String())
	}
	return id
}

// TestVerifyConvertedImages runs lazylayer verify on each image lazylayer
// convert made: it passes; and on a copy whose largest layer has one byte
// flipped, pushed under a new tag with the manifest naming the damaged
// blob and nothing else changed: it exits with status 3.
func TestVerifyConvertedImages(t *testing.T) {
	reg := startRegistry(t)
	_, ll := convertSource(t, reg, bothFormats...)
	for _, f := range bothFormats {
		t.Run(f.tag, func(t *testing.T) {
			ref := reg.Host() + "/e2e/app:" + f.tag
			if out, code := ll.run(t, "verify", ref); code != 0 {
				t.Errorf("lazylayer verify %s: exit %d, want 0\n%s", ref, code, out)
			}

			raw, m := getManifest(t, reg, "e2e/app", f.tag)
			largest := 0
			for i, l := range m.Layers {
				if l.Size > m.Layers[largest].Size {
					largest = i
				}
			}
			old := m.Layers[largest].Digest
			blob := getBlob(t, reg, "e2e/app", old)
			blob[len(blob)/2] ^= 0x10
			d, err := reg.Push(t.Context(), "e2e/app", blob)
			if err != nil {
				t.Fatal(err)
			}
			damaged := bytes.ReplaceAll(raw, []byte(old), []byte(d))
			if _, err := reg.PushManifest(t.Context(), "e2e/app", f.tag+"-damaged", ocispec.MediaTypeImageManifest, damaged); err != nil {
				t.Fatal(err)
			}
			out, code := ll.run(t, "verify", ref+"-damaged")
			if code != 3 {
				t.Errorf("lazylayer verify of the damaged copy: exit %d, want 3\n%s", code, out)
			}
			t.Logf("lazylayer verify of the damaged copy:\n%s", out)
		})
	}
}
