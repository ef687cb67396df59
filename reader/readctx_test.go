package reader

import (
	"context"
	"errors"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/toc"
)

// valueFetcher records the value of a context key each Fetch sees.
type valueFetcher struct {
	*countingFetcher
	seen chan any
}

type ctxKey struct{}

func (v valueFetcher) Fetch(ctx context.Context, ranges []fetcher.Range, fn func(fetcher.Range, []byte) error) error {
	v.seen <- ctx.Value(ctxKey{})
	return v.countingFetcher.Fetch(ctx, ranges, fn)
}

// TestReadAtContextCancel: a read whose fetch hangs returns the context's
// error once the context is cancelled, and the fetcher sees the read's
// context values; the same read succeeds once the fetch can go on.
func TestReadAtContextCancel(t *testing.T) {
	var b blobBuilder
	content := pseudoRandom(3<<20, 1)
	b.add(&toc.Entry{Name: "f"}, content)
	blob, index := b.finish()
	l, cf := testLayer(t, blob, index)
	gate := make(chan struct{})
	cf.gate = gate
	vf := valueFetcher{countingFetcher: cf, seen: make(chan any, 16)}
	l.fetcher = vf

	f, err := l.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, ok := f.(ContextReaderAt)
	if !ok {
		t.Fatalf("%T does not implement ContextReaderAt", f)
	}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "on-demand"))
	done := make(chan error, 1)
	go func() {
		_, err := r.ReadAtContext(ctx, make([]byte, 4096), 1<<20+5)
		done <- err
	}()
	if got := <-vf.seen; got != "on-demand" {
		t.Errorf("the fetcher saw value %v, want the read's", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v, want context.Canceled", err)
	}

	close(gate)
	p := make([]byte, 4096)
	n, err := r.ReadAtContext(context.Background(), p, 1<<20+5)
	if err != nil || n != len(p) || string(p) != string(content[1<<20+5:1<<20+5+4096]) {
		t.Fatalf("read after the fetch went on: %d, %v", n, err)
	}
}
