package tarcheck_test

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/lazylayer/lazylayer/internal/tarcheck"
	"github.com/lazylayer/lazylayer/internal/tartest"
	"github.com/lazylayer/lazylayer/toc"
)

var testErrs = tarcheck.Sentinels{Mismatch: errors.New("mismatch"), Invalid: errInvalid, TooLarge: errors.New("too large")}

var errInvalid = errors.New("invalid")

// FuzzTarStream builds tar-split segments and file records from stream as
// plan says (3 bytes per record: kind, length), and checks them with the
// structural check alone, which costs no decompression: whatever it
// accepts rebuilds, with zeros for file contents, a tar that archive/tar
// reads as exactly the headers it accepted. Runs of zeros, which make up
// most of a tar header, are a kind of segment of their own, so that a
// header costs the fuzzer its hundred-odd meaningful bytes, not 512.
func FuzzTarStream(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream, plan []byte) {
		s := tarcheck.Stream{MaxHeader: 64 << 10, Errs: testErrs}
		var rebuilt bytes.Buffer
		var accepted []*toc.Entry
		var err error
		for ; len(plan) >= 3 && err == nil; plan = plan[3:] {
			n := int(binary.LittleEndian.Uint16(plan[1:]))
			switch plan[0] % 4 {
			case 0: // bytes of stream
				seg := stream[:min(n, len(stream))]
				stream = stream[len(seg):]
				err = s.Segment(seg)
				rebuilt.Write(seg)
				continue
			case 1: // zeros
				err = s.Segment(make([]byte, n))
				rebuilt.Write(make([]byte, n))
				continue
			}
			// A file record, named after the headers before it, as
			// tar-split does, and of n bytes or (kind 3) sized after them.
			var name string
			size := int64(n)
			if pending := s.Pending(); len(pending) > 0 {
				if hdr, herr := tar.NewReader(bytes.NewReader(pending)).Next(); herr == nil {
					name = hdr.Name
					if plan[0]%4 == 3 {
						size = hdr.Size
					}
				}
			}
			if size < 0 || size > 1<<20 {
				return
			}
			var hdr *tar.Header
			if hdr, err = s.File([]byte(name), size); err == nil {
				e, eerr := tartest.EntryOf(hdr)
				if eerr != nil {
					return // it would match no index entry
				}
				accepted = append(accepted, e)
				rebuilt.Write(make([]byte, size))
			}
		}
		if err != nil || s.End() != nil {
			return
		}
		if s.Size() != int64(rebuilt.Len()) {
			t.Fatalf("tar stream of %d bytes, %d rebuilt", s.Size(), rebuilt.Len())
		}
		tartest.CheckRebuilt(t, rebuilt.Bytes(), accepted)
	})
}
