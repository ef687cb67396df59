// Package limits holds the rule every package's bound options share.
package limits

// Or returns n, or def when n is not positive: a bound set to zero or
// less selects its default, in every package.
func Or[T int | int64](n, def T) T {
	if n <= 0 {
		return def
	}
	return n
}
