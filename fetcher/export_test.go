package fetcher

// SetParkHook makes f call fn each time a request is held back to wait
// for the answer to another. fn runs with f's lock held and must not use
// f.
func SetParkHook(f *HTTP, fn func()) { f.gate.parkHook = fn }
