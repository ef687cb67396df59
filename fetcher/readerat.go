package fetcher

import (
	"context"
	"fmt"
	"io"
)

// readerAtFetcher serves ranges from an io.ReaderAt of known size.
type readerAtFetcher struct {
	ra   io.ReaderAt
	size int64
}

// FromReaderAt returns a Fetcher over ra, whose size is size: a local file,
// a bytes.Reader, or any other random-access source. ra must be safe for
// concurrent ReadAt calls, as io.ReaderAt requires.
func FromReaderAt(ra io.ReaderAt, size int64) Fetcher {
	return &readerAtFetcher{ra: ra, size: size}
}

func (f *readerAtFetcher) Size(context.Context) (int64, error) { return f.size, nil }

func (f *readerAtFetcher) Fetch(ctx context.Context, ranges []Range, fn func(Range, []byte) error) error {
	for _, r := range ranges {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.Offset < 0 || r.Length < 0 || r.End() > f.size || r.End() < r.Offset {
			return fmt.Errorf("fetcher: range %v outside blob of %d bytes: %w", r, f.size, ErrRange)
		}
		data := make([]byte, r.Length)
		// io.ReaderAt may report io.EOF along with a full read at the end.
		if n, err := f.ra.ReadAt(data, r.Offset); n < len(data) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("fetcher: read %v: %w", r, err)
		}
		if err := fn(r, data); err != nil {
			return err
		}
	}
	return nil
}
