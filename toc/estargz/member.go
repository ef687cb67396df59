package estargz

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"

	"github.com/lazylayer/lazylayer/toc"

	"github.com/klauspost/compress/gzip"
	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// TOCTar returns the uncompressed contents of an eStargz TOC
// member: a tar stream holding the single entry TOCTarName with tocJSON as
// its contents, then the tar end-of-archive blocks, byte for byte as the
// reference writer produces them. WriteTOCMember compresses exactly
// these bytes, so a writer can hash them for the layer's DiffID instead of
// decompressing the member it wrote.
func TOCTar(tocJSON []byte) ([]byte, error) {
	var buf bytes.Buffer
	// A header block, the JSON padded to a block, two zero blocks.
	buf.Grow(len(tocJSON) + 4*512)
	if err := writeEStargzTOCTar(&buf, int64(len(tocJSON)), writeBytes(tocJSON)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeEStargzTOCTar writes the tar stream of a TOC member to w: the
// header of a TOC JSON of size bytes, the JSON that encode writes, the
// padding and the end-of-archive blocks.
func writeEStargzTOCTar(w io.Writer, size int64, encode func(io.Writer) error) error {
	tw := tar.NewWriter(w)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: TOCTarName, Size: size}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("toc: TOC member: %w", err)
	}
	if err := encode(tw); err != nil {
		return fmt.Errorf("toc: TOC member: %w", err)
	}
	// Close reports a JSON shorter than size; Write, a longer one.
	if err := tw.Close(); err != nil {
		return fmt.Errorf("toc: TOC member: %w", err)
	}
	return nil
}

func writeBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// WriteTOCMember writes the gzip member that ends an eStargz blob's
// data: TOCTar(tocJSON) compressed at the given gzip level. The
// footer (Footer) follows the member in the blob.
func WriteTOCMember(w io.Writer, tocJSON []byte, level int) error {
	return WriteTOCMemberFrom(w, nil, int64(len(tocJSON)), level, writeBytes(tocJSON))
}

// WriteTOCMemberFrom writes the TOC member of a TOC JSON of size
// bytes without holding it: encode writes the JSON (with an
// Encoder, say) to the writer it is given, and must write exactly
// size bytes. The tar header that comes first needs the size, so a writer
// counts the JSON in a first pass and streams it in a second. raw, if not
// nil, receives the member's uncompressed bytes (what TOCTar
// returns), for the layer's DiffID.
func WriteTOCMemberFrom(w, raw io.Writer, size int64, level int, encode func(io.Writer) error) error {
	zw, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return fmt.Errorf("toc: TOC member: %w", err)
	}
	var dst io.Writer = zw
	if raw != nil {
		dst = io.MultiWriter(zw, raw)
	}
	if err := writeEStargzTOCTar(dst, size, encode); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("toc: TOC member: %w", err)
	}
	return nil
}

// ReadTOCMember extracts the TOC JSON from an eStargz TOC member,
// the blob bytes [Footer.TOCOffset, blob size - Footer.Size). Only the
// first gzip member is read; the JSON must be the first tar entry, named
// TOCTarName. Decompression stops at the size limit (WithMaxTOCSize), so a
// compressed bomb costs no more than the limit.
func ReadTOCMember(member []byte, opts ...toc.DecodeOption) ([]byte, error) {
	cfg := toc.NewLimits(opts...)
	json, size, err := openEStargzTOCMember(bytes.NewReader(member), cfg)
	if err != nil {
		return nil, err
	}
	// Grow the buffer with the data actually inflated rather than trusting
	// the header's size for one big allocation.
	var buf bytes.Buffer
	buf.Grow(int(min(size, int64(len(member)), 1<<20)))
	if _, err := buf.ReadFrom(json); err != nil {
		return nil, fmt.Errorf("toc: estargz TOC member: reading %d bytes of JSON: %w: %w", size, toc.ErrInvalidTOC, err)
	}
	return buf.Bytes(), nil
}

// openEStargzTOCMember starts reading an eStargz TOC member from r: it
// checks the member's tar header and returns a reader of the TOC JSON and
// its size. What it may inflate is bounded by the TOC size limit.
func openEStargzTOCMember(r io.Reader, cfg toc.Limits) (io.Reader, int64, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, 0, fmt.Errorf("toc: estargz TOC member: %w: %w", toc.ErrInvalidTOC, err)
	}
	zr.Multistream(false)
	// Bound what the tar reader may inflate: the JSON, plus room for its
	// header blocks (archive/tar caps PAX and GNU long-name records at 1 MiB).
	const headerAllowance = 2 << 20
	tr := tar.NewReader(io.LimitReader(zr, cfg.MaxTOCSize+headerAllowance))
	hdr, err := tr.Next()
	if err != nil {
		return nil, 0, fmt.Errorf("toc: estargz TOC member: no tar header: %w: %w", toc.ErrInvalidTOC, err)
	}
	if hdr.Name != TOCTarName {
		return nil, 0, fmt.Errorf("toc: estargz TOC member: tar entry %q, want %q: %w", untrusted.Short(hdr.Name), TOCTarName, toc.ErrInvalidTOC)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil, 0, fmt.Errorf("toc: estargz TOC member: tar entry type %q is not a regular file: %w", hdr.Typeflag, toc.ErrInvalidTOC)
	}
	if hdr.Size > cfg.MaxTOCSize {
		return nil, 0, fmt.Errorf("toc: estargz TOC JSON is %d bytes, limit %d: %w", hdr.Size, cfg.MaxTOCSize, toc.ErrTOCTooLarge)
	}
	return tr, hdr.Size, nil
}

// Decode decodes an eStargz TOC member (see ReadTOCMember)
// whose blob offset is tocOffset into a TOC (see Unmarshal).
func Decode(member []byte, tocOffset int64, opts ...toc.DecodeOption) (*toc.TOC, error) {
	tocJSON, err := ReadTOCMember(member, opts...)
	if err != nil {
		return nil, err
	}
	return Unmarshal(tocJSON, tocOffset, opts...)
}
