package prefetch

// Option configures the planners: FromImageConfig, FromTrace and
// FromPatterns.
type Option func(*options)

type options struct {
	maxItems    int
	maxDepth    int
	runtimeDirs bool
}

// DefaultMaxItems is the number of items a planner adds at most unless
// WithMaxItems says otherwise.
const DefaultMaxItems = 8192

func buildOptions(opts []Option) options {
	o := options{maxItems: DefaultMaxItems, maxDepth: 8, runtimeDirs: true}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithMaxItems bounds the number of items a planner adds; it stops adding
// once the bound is reached. n <= 0 keeps the default.
func WithMaxItems(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxItems = n
		}
	}
}

// WithMaxInterpreterDepth bounds how many #! interpreters FromImageConfig
// follows from one program (a script run by a script run by ...). The
// default is 8; n <= 0 keeps it.
func WithMaxInterpreterDepth(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxDepth = n
		}
	}
}

// WithRuntimeFiles selects whether FromImageConfig adds the files a
// runtime reads at start (loader cache, NSS, certificates, time zone,
// locale, language runtime bundles). It does by default.
func WithRuntimeFiles(enabled bool) Option {
	return func(o *options) { o.runtimeDirs = enabled }
}
