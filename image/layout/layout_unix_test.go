//go:build unix

package layout_test

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/lazylayer/lazylayer/image/layout"
)

// TestNamedPipe: a blob that is a named pipe is refused without waiting
// for a writer.
func TestNamedPipe(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	newImage(t, "layer").push(t, open(t, dir, "v1"))
	l := open(t, dir, "v1")
	blobs := filepath.Join(dir, "blobs", "sha256")

	fifo := descOf("", []byte("fifo"))
	if err := syscall.Mkfifo(filepath.Join(blobs, fifo.Digest.Encoded()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Blob(ctx, fifo); !errors.Is(err, layout.ErrInvalid) {
		t.Errorf("Blob of a named pipe = %v, want ErrInvalid", err)
	}
	if _, err := l.Manifest(ctx, fifo); !errors.Is(err, layout.ErrInvalid) {
		t.Errorf("Manifest of a named pipe = %v, want ErrInvalid", err)
	}
}
