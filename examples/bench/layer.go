package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
)

// layerGzipLevel is the gzip level of a layer as docker and BuildKit
// write it: compress/gzip's default.
const layerGzipLevel = 6

// gzipBytes compresses r as an ordinary image layer: gzip at
// layerGzipLevel.
func gzipBytes(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, layerGzipLevel)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(zw, r); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// estimateCompressed returns the compressed size of the trace's files if
// each were gzipped on its own: a stand-in for the bytes of the chunks a
// lazy reader needs until a mode computes them from the real chunk table.
func estimateCompressed(root string, trace []TraceFile) (int64, error) {
	var total int64
	for _, tf := range trace {
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(tf.Name)))
		if err != nil {
			return 0, err
		}
		cw := &countingWriter{}
		zw := gzip.NewWriter(cw)
		_, err = io.Copy(zw, f)
		f.Close()
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			return 0, fmt.Errorf("estimate %s: %w", tf.Name, err)
		}
		total += cw.n
	}
	return total, nil
}

// countingWriter counts and discards what is written to it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
