package reader

import (
	"errors"
	"fmt"
)

// Errors that callers can test for with errors.Is. The reader wraps them
// with what failed and where, often inside an *fs.PathError; their own
// text carries no package prefix, so that the wrapping names it once.
var (
	// ErrCorrupt reports a blob that is not a well-formed seekable layer:
	// a truncated blob, a damaged footer or index, offsets or sizes that
	// point outside the blob, or compressed data that does not decompress.
	ErrCorrupt = errors.New("corrupt layer blob")

	// ErrTOCDigest reports an index whose digest differs from the one the
	// caller pinned with WithTOCDigest.
	ErrTOCDigest = errors.New("TOC digest mismatch")

	// ErrChunkDigest reports chunk bytes whose digest differs from the one
	// the index records for them, or a file's whole content whose digest
	// differs from the file's. No byte of such a chunk is returned, nor
	// the last bytes of such a file, and no read of the file succeeds
	// once that is known.
	ErrChunkDigest = errors.New("chunk digest mismatch")

	// ErrUnverifiable reports file content for which the index records no
	// digest at all, so its bytes cannot be checked and are not returned.
	ErrUnverifiable = errors.New("chunk has no digest")

	// ErrLinkLoop reports a chain of hard or symbolic links that never
	// reaches a file, or that is longer than the reader follows.
	ErrLinkLoop = errors.New("too many links")

	// ErrNotSeekable reports a blob that ends in no footer of a seekable
	// format and begins like a plain layer: a gzip or zstd stream, or a
	// tar archive. Such a layer can only be pulled whole. (A seekable blob
	// cut short enough to lose its footer looks the same.)
	ErrNotSeekable = errors.New("layer is not seekable")

	// ErrUnsupportedFormat reports a blob in a seekable format this reader
	// cannot serve (yet), such as eStargz with an external TOC.
	ErrUnsupportedFormat = errors.New("unsupported layer format")

	// ErrWindow reports a zTOC checkpoint whose window (the 32 KiB of
	// output a span resumes decoding after) differs from the bytes
	// decoded before it. soci-snapshotter does not check windows: such a
	// zTOC makes it return wrong bytes that pass every span digest. The
	// reader returns no byte that derives from it.
	ErrWindow = fmt.Errorf("checkpoint window mismatch: %w", ErrCorrupt)

	// ErrLayerDigest reports a layer blob whose digest differs from
	// WithLayerDigest's, found once the whole blob was fetched.
	ErrLayerDigest = fmt.Errorf("layer digest mismatch: %w", ErrCorrupt)

	// ErrIndexMismatch reports a zTOC whose file table disagrees with the
	// tar headers the layer holds: an entry it lists with other
	// attributes or at another place than the tar, or one it leaves
	// out. The zTOC, not the layer, is wrong: a caller may pull the layer
	// whole instead.
	ErrIndexMismatch = fmt.Errorf("zTOC does not match the layer's tar headers: %w", ErrCorrupt)
)
