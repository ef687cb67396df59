package ocidoc

import ocispec "github.com/opencontainers/image-spec/specs-go/v1"

// Media types of Docker's image format (schema 2), which the SDK reads
// alongside OCI's, and OCI's nondistributable layers, deprecated but
// still served.
const (
	MediaTypeDockerManifest      = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig        = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer         = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeDockerLayerZstd     = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerLayerTar      = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeOCINondistLayer     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	MediaTypeOCINondistLayerGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	MediaTypeOCINondistLayerZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
)

// ManifestTypes are the media types of the manifests and indexes the SDK
// reads, indexes first.
var ManifestTypes = [...]string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifestList, MediaTypeDockerManifest}

// Kind is what a manifest-like document is.
type Kind uint8

const (
	KindManifest Kind = iota + 1
	KindIndex
)

func (k Kind) String() string {
	switch k {
	case KindManifest:
		return "manifest"
	case KindIndex:
		return "index"
	}
	return "document"
}

// KindOf returns what a document of media type mt is, if the SDK reads
// it.
func KindOf(mt string) (Kind, bool) {
	switch mt {
	case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList:
		return KindIndex, true
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
		return KindManifest, true
	}
	return 0, false
}

// IsConfig reports whether mt is the media type of an image config.
func IsConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == MediaTypeDockerConfig
}

// Compression is how a layer blob wraps its tar.
type Compression uint8

const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "unknown"
}

// LayerCompression returns the compression a layer media type announces,
// if it is a tar layer's.
func LayerCompression(mt string) (Compression, bool) {
	switch mt {
	case ocispec.MediaTypeImageLayer, MediaTypeDockerLayerTar, MediaTypeOCINondistLayer:
		return Uncompressed, true
	case ocispec.MediaTypeImageLayerGzip, MediaTypeDockerLayer, MediaTypeDockerForeignLayer, MediaTypeOCINondistLayerGzip:
		return Gzip, true
	case ocispec.MediaTypeImageLayerZstd, MediaTypeDockerLayerZstd, MediaTypeOCINondistLayerZstd:
		return Zstd, true
	}
	return 0, false
}
