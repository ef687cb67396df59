package soci

import (
	"fmt"
	"time"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	"github.com/opencontainers/go-digest"
)

// tarBlockSize is the size of a tar header block.
const tarBlockSize = 512

// fileTypes are the entry types a zTOC names.
var fileTypes = map[string]bool{"reg": true, "dir": true, "symlink": true, "hardlink": true, "char": true, "block": true, "fifo": true}

// Decode decodes and validates an untrusted zTOC. Every count and size it
// declares is checked against the limits (see the With* options) before
// anything is allocated for it; it returns errors wrapping ErrTooLarge
// for a limit exceeded and ErrInvalid for anything malformed. It accepts
// times in any zone and keeps the zone, so that Encode gives back the
// same bytes. The result does not alias buf, except Checkpoints.
func Decode(buf []byte, opts ...Option) (*Ztoc, error) {
	c := newConfig(opts)
	if int64(len(buf)) > c.maxZtocSize {
		return nil, fmt.Errorf("%w: zTOC of %d bytes exceeds the limit of %d", ErrTooLarge, len(buf), c.maxZtocSize)
	}
	d := decoder{c: c, buf: buf}
	z, err := d.ztoc()
	if err != nil {
		return nil, fmt.Errorf("soci: decode zTOC: %w", err)
	}
	return z, nil
}

type decoder struct {
	c           config
	buf         []byte
	stringBytes int64 // decoded so far, against c.maxStringBytes
	paxRecords  int   // decoded so far, against c.maxPAXRecords
}

func (d *decoder) ztoc() (*Ztoc, error) {
	root, err := rootTable(d.buf)
	if err != nil {
		return nil, err
	}
	z := new(Ztoc)
	if z.Version, err = d.str(root, 0); err != nil {
		return nil, err
	}
	if z.BuildToolIdentifier, err = d.str(root, 1); err != nil {
		return nil, err
	}
	if z.CompressedArchiveSize, err = root.int64(2); err != nil {
		return nil, err
	}
	if z.UncompressedArchiveSize, err = root.int64(3); err != nil {
		return nil, err
	}
	for _, size := range []int64{z.CompressedArchiveSize, z.UncompressedArchiveSize} {
		if err := d.checkSize("archive size", size); err != nil {
			return nil, err
		}
	}
	toc, ok, err := root.table(4)
	if err != nil {
		return nil, err
	}
	if ok {
		if z.Files, err = d.files(toc, z.UncompressedArchiveSize); err != nil {
			return nil, err
		}
	}
	info, ok, err := root.table(5)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no compression_info", ErrInvalid)
	}
	if err := d.compressionInfo(z, info); err != nil {
		return nil, err
	}
	return z, nil
}

// checkSize checks a size or offset the zTOC claims.
func (d *decoder) checkSize(what string, n int64) error {
	if n < 0 {
		return fmt.Errorf("%w: negative %s %d", ErrInvalid, what, n)
	}
	if n > d.c.maxLayerSize {
		return fmt.Errorf("%w: %s %d exceeds the layer size limit of %d", ErrTooLarge, what, n, d.c.maxLayerSize)
	}
	return nil
}

// str decodes a string field, counting it against the string limit.
func (d *decoder) str(t flatTable, slot int) (string, error) {
	b, err := t.bytes(slot)
	if err != nil {
		return "", err
	}
	return d.count(b)
}

func (d *decoder) count(b []byte) (string, error) {
	d.stringBytes += int64(len(b))
	if d.stringBytes > d.c.maxStringBytes {
		return "", fmt.Errorf("%w: strings exceed the limit of %d bytes", ErrTooLarge, d.c.maxStringBytes)
	}
	return string(b), nil
}

func (d *decoder) files(toc flatTable, tarSize int64) ([]File, error) {
	start, n, err := toc.vector(0)
	if err != nil {
		return nil, err
	}
	if n > d.c.maxFiles {
		return nil, fmt.Errorf("%w: %d files exceed the limit of %d", ErrTooLarge, n, d.c.maxFiles)
	}
	files := make([]File, n)
	var next int64 // where the next tar header may start
	for i := range files {
		at, err := follow(d.buf, start+4*uint64(i))
		if err != nil {
			return nil, err
		}
		t, err := tableAt(d.buf, at)
		if err != nil {
			return nil, err
		}
		f := &files[i]
		if err := d.file(t, f); err != nil {
			return nil, fmt.Errorf("file %d: %w", i, err)
		}
		// Files are in tar order, each after its own header block, and
		// none overlaps the file before or the end of the tar stream.
		if f.Offset < next+tarBlockSize || f.Size < 0 || f.Size > tarSize-f.Offset {
			return nil, fmt.Errorf("%w: file %d %q: data [%d, +%d) overlaps the file before or ends past the tar stream's %d bytes",
				ErrInvalid, i, untrusted.Short(f.Name), f.Offset, f.Size, tarSize)
		}
		next = (f.Offset + f.Size + tarBlockSize - 1) &^ (tarBlockSize - 1)
	}
	return files, nil
}

func (d *decoder) file(t flatTable, f *File) error {
	var err error
	strs := []struct {
		slot int
		s    *string
	}{{0, &f.Name}, {1, &f.Type}, {4, &f.Linkname}, {8, &f.Uname}, {9, &f.Gname}}
	for _, s := range strs {
		if *s.s, err = d.str(t, s.slot); err != nil {
			return err
		}
	}
	if !fileTypes[f.Type] {
		return fmt.Errorf("%w: %q has unknown type %q", ErrInvalid, untrusted.Short(f.Name), untrusted.Short(f.Type))
	}
	ints := []struct {
		slot int
		n    *int64
	}{{2, &f.Offset}, {3, &f.Size}, {5, &f.Mode}, {11, &f.Devmajor}, {12, &f.Devminor}}
	for _, n := range ints {
		if *n.n, err = t.int64(n.slot); err != nil {
			return err
		}
	}
	if f.UID, err = t.uint32(6); err != nil {
		return err
	}
	if f.GID, err = t.uint32(7); err != nil {
		return err
	}
	mtime, err := t.bytes(10)
	if err != nil {
		return err
	}
	if f.ModTime, err = time.Parse(time.RFC3339Nano, string(mtime)); err != nil {
		return fmt.Errorf("%w: %q has mod_time %q, not RFC 3339", ErrInvalid, untrusted.Short(f.Name), untrusted.Short(string(mtime)))
	}
	start, n, err := t.vector(13)
	if err != nil {
		return err
	}
	if d.paxRecords += n; d.paxRecords > d.c.maxPAXRecords {
		return fmt.Errorf("%w: PAX records exceed the limit of %d", ErrTooLarge, d.c.maxPAXRecords)
	}
	if n > 0 {
		f.PAXRecords = make([]PAXRecord, n)
	}
	for i := range f.PAXRecords {
		at, err := follow(d.buf, start+4*uint64(i))
		if err != nil {
			return err
		}
		x, err := tableAt(d.buf, at)
		if err != nil {
			return err
		}
		r := &f.PAXRecords[i]
		if r.Key, err = d.str(x, 0); err != nil {
			return err
		}
		if r.Value, err = d.str(x, 1); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) compressionInfo(z *Ztoc, t flatTable) error {
	alg, err := t.int8(0, int8(defaultCompression))
	if err != nil {
		return err
	}
	z.Compression = Compression(alg)
	if z.Compression != Gzip && z.Compression != Uncompressed {
		return fmt.Errorf("%w: unknown compression_algorithm %d", ErrInvalid, alg)
	}
	maxSpan, err := t.uint32(1)
	if err != nil {
		return err
	}
	z.MaxSpanID = int32(maxSpan)
	start, n, err := t.vector(2)
	if err != nil {
		return err
	}
	if n > d.c.maxSpans {
		return fmt.Errorf("%w: %d spans exceed the limit of %d", ErrTooLarge, n, d.c.maxSpans)
	}
	if int64(z.MaxSpanID) != int64(n)-1 {
		return fmt.Errorf("%w: max_span_id %d disagrees with %d span digests", ErrInvalid, z.MaxSpanID, n)
	}
	z.SpanDigests = make([]digest.Digest, n)
	for i := range z.SpanDigests {
		s, err := stringAt(d.buf, start+4*uint64(i))
		if err != nil {
			return err
		}
		if z.SpanDigests[i], err = parseSpanDigest(s); err != nil {
			return fmt.Errorf("span %d: %w", i, err)
		}
	}
	if z.Checkpoints, err = t.bytes(3); err != nil {
		return err
	}
	return d.checkSpans(z)
}

// checkSpans checks the checkpoint blob against the rest of z.
func (d *decoder) checkSpans(z *Ztoc) error {
	spans := len(z.SpanDigests)
	if z.Compression == Uncompressed {
		tz, err := DecodeTarZinfo(z.Checkpoints)
		if err != nil {
			return err
		}
		if tz.Size != z.CompressedArchiveSize {
			return fmt.Errorf("%w: TarZinfo size %d disagrees with the archive size %d", ErrInvalid, tz.Size, z.CompressedArchiveSize)
		}
		if n := tz.Spans(); n != int64(spans) {
			return fmt.Errorf("%w: TarZinfo makes %d spans, the zTOC has %d span digests", ErrInvalid, n, spans)
		}
		return nil
	}
	cp, err := decodeCheckpoints(z.Checkpoints, d.c)
	if err != nil {
		return err
	}
	if len(cp.Points) != spans {
		return fmt.Errorf("%w: %d checkpoints for %d span digests", ErrInvalid, len(cp.Points), spans)
	}
	if last := cp.Points[len(cp.Points)-1]; last.In > z.CompressedArchiveSize {
		return fmt.Errorf("%w: checkpoint %d at compressed offset %d is past the archive's %d bytes", ErrInvalid, spans-1, last.In, z.CompressedArchiveSize)
	}
	return nil
}

// parseSpanDigest accepts a sha256 digest in canonical form only, so that
// Encode writes back the bytes it came from.
func parseSpanDigest(s []byte) (digest.Digest, error) {
	const prefix = "sha256:"
	ok := len(s) == len(prefix)+64 && string(s[:len(prefix)]) == prefix
	for _, c := range s[min(len(prefix), len(s)):] {
		ok = ok && ('0' <= c && c <= '9' || 'a' <= c && c <= 'f')
	}
	if !ok {
		return "", fmt.Errorf("%w: span digest %q is not a sha256 digest", ErrInvalid, untrusted.Short(string(s)))
	}
	return digest.Digest(s), nil
}
