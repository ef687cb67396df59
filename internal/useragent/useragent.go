// Package useragent names lazylayer in the User-Agent of every HTTP
// request the SDK sends, so registry operators can tell its traffic.
package useragent

import "runtime/debug"

const modulePath = "github.com/lazylayer/lazylayer"

// Version is the version of the lazylayer module the program was built
// with: the module's own when it is the main module, as go install
// records it, else the one the program requires; "devel" when unknown.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == modulePath && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == modulePath && d.Version != "" && d.Version != "(devel)" {
				return d.Version
			}
		}
	}
	return "devel"
}

// String is the SDK's User-Agent, "lazylayer/<version>", after product
// when it is not empty.
func String(product string) string {
	ua := "lazylayer/" + Version()
	if product != "" {
		ua = product + " " + ua
	}
	return ua
}
