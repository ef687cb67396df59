package writer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/lazylayer/lazylayer/toc/zstdchunked"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

var (
	gzipMagic = []byte{0x1f, 0x8b, 0x08}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompressInput recognises a gzip or zstd input by its magic bytes and
// returns the tar stream inside it; anything else is taken as plain tar.
// The returned func releases the decompressor.
func decompressInput(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, nil, fmt.Errorf("writer: reading input: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("writer: gzip input: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		// Cap the window an untrusted frame may demand; zstd's own
		// levels use at most 8 MiB, --long mode 128 MiB.
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return nil, nil, fmt.Errorf("writer: zstd input: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// tapReader sits between archive/tar and the input. It counts what the tar
// reader consumes and, while recording, keeps a copy: that copy is the exact
// header bytes of an entry, which the output reproduces verbatim. If spool is
// set, everything consumed is also written there.
type tapReader struct {
	r         io.Reader
	n         int64
	recording bool
	recorded  []byte
	spool     io.Writer
	spoolErr  error
}

func (t *tapReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	if t.recording {
		t.recorded = append(t.recorded, p[:n]...)
	}
	if t.spool != nil && t.spoolErr == nil && n > 0 {
		_, t.spoolErr = t.spool.Write(p[:n])
	}
	return n, err
}

// record is one input entry. Its raw header and payload are valid until the
// next call to entryReader.next.
type record struct {
	hdr *tar.Header
	// raw is the entry's header as it appears in the input: the header
	// block plus any PAX or GNU extension records before it and, for a
	// PAX 1.0 sparse file, the sparse map that begins its data.
	raw []byte
	// lead is raw preceded by the previous entry's padding, exactly as
	// the input has it: together with the payloads, the leads and the
	// trailer (entryReader.trailer) make up the whole input.
	lead []byte
	// start is the input offset of the entry's first header byte.
	start   int64
	payload io.Reader
}

// entryReader parses a tar stream into records, keeping each entry's raw
// header bytes.
type entryReader struct {
	tap tapReader
	tr  *tar.Reader
}

func newEntryReader(r io.Reader, spool io.Writer) *entryReader {
	er := &entryReader{tap: tapReader{r: r, spool: spool}}
	er.tr = tar.NewReader(&er.tap)
	return er
}

// next returns the next record, or io.EOF after the last one. Any payload
// of the previous record that was not read is skipped.
func (er *entryReader) next() (*record, error) {
	if _, err := er.drain(); err != nil {
		return nil, err
	}
	// Headers start on 512-byte boundaries: whatever Next reads before
	// the boundary is the previous entry's padding.
	start := er.tap.n + blockPadding(er.tap.n)
	er.tap.recording, er.tap.recorded = true, er.tap.recorded[:0]
	hdr, err := er.tr.Next()
	er.tap.recording = false
	if errors.Is(err, tar.ErrInsecurePath) {
		err = nil // names are cleaned like readers clean them; see cleanName
	}
	if err == io.EOF {
		return nil, io.EOF
	}
	if err == nil && er.tap.spoolErr != nil {
		err = fmt.Errorf("spooling input: %w", er.tap.spoolErr)
	}
	if err != nil {
		return nil, fmt.Errorf("writer: tar input at offset %d: %w", start, err)
	}
	return &record{
		hdr:     hdr,
		lead:    er.tap.recorded,
		raw:     er.tap.recorded[start-(er.tap.n-int64(len(er.tap.recorded))):],
		start:   start,
		payload: er.tr,
	}, nil
}

// trailer returns, once next has returned io.EOF, the input bytes that
// ended the archive: the last entry's padding and the end-of-archive
// blocks. Whatever follows them is still unread in the input (read it
// with readRest).
func (er *entryReader) trailer() []byte { return er.tap.recorded }

// readRest reads input beyond the end-of-archive blocks, which some tar
// writers pad to a record size.
func (er *entryReader) readRest(p []byte) (int, error) { return er.tap.Read(p) }

// drain skips what is left of the current record's payload and reports the
// input offset where the record ends.
func (er *entryReader) drain() (int64, error) {
	if _, err := io.Copy(io.Discard, er.tr); err != nil {
		return 0, fmt.Errorf("writer: tar input at offset %d: %w", er.tap.n, err)
	}
	return er.tap.n, nil
}

// isSparse reports whether h is a GNU sparse file (see zstdchunked.IsSparseTar).
// archive/tar reads its contents expanded, holes as zeros, and sets Size
// to the expanded size, not the size of the data the tar stores.
func isSparse(h *tar.Header) bool { return zstdchunked.IsSparseTar(h.Typeflag, h.PAXRecords) }

// expandSparse turns rec, a sparse file, into the plain regular file that
// archive/tar reads: a header re-encoded without the sparse map, and the
// contents expanded.
func expandSparse(rec *record) error {
	h := *rec.hdr
	h.Typeflag = tar.TypeReg
	h.Format = tar.FormatUnknown
	h.Xattrs = nil // the same records as PAXRecords, filtered below
	h.PAXRecords = nil
	for k, v := range rec.hdr.PAXRecords {
		if !strings.HasPrefix(k, "GNU.sparse.") {
			if h.PAXRecords == nil {
				h.PAXRecords = make(map[string]string)
			}
			h.PAXRecords[k] = v
		}
	}
	raw, err := encodeHeader(&h)
	if err != nil {
		return fmt.Errorf("writer: entry %q: re-encoding sparse file header: %w", h.Name, err)
	}
	rec.hdr, rec.raw, rec.lead = &h, raw, nil
	return nil
}

// encodeHeader returns the tar header blocks for h, without payload.
func encodeHeader(h *tar.Header) ([]byte, error) {
	var b bytes.Buffer
	if err := tar.NewWriter(&b).WriteHeader(h); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// blockPadding is how many bytes take n to the next 512-byte boundary.
func blockPadding(n int64) int64 {
	return -n & 511
}
