package fetcher

// HTTPOption configures an HTTP fetcher made by NewHTTP.
type HTTPOption interface{ applyHTTP(*HTTP) }

// ReaderAtOption configures a fetcher made by FromReaderAt.
type ReaderAtOption interface{ applyReaderAt(*ReaderAt) }

// Option configures any fetcher of this package.
type Option interface {
	HTTPOption
	ReaderAtOption
}

type observerOption func(RequestInfo)

func (o observerOption) applyHTTP(f *HTTP)         { f.observer = o }
func (o observerOption) applyReaderAt(f *ReaderAt) { f.observer = o }

// WithObserver makes the fetcher call fn after every request to its source
// with what the request asked, got and cost. fn is called synchronously
// and may be called concurrently; it should return quickly.
func WithObserver(fn func(RequestInfo)) Option { return observerOption(fn) }

type httpOptionFunc func(*HTTP)

func (o httpOptionFunc) applyHTTP(f *HTTP) { o(f) }
