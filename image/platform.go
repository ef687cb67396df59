package image

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"github.com/lazylayer/lazylayer/internal/untrusted"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// platform is an os, architecture and variant in normal form: lower
// case, Go's architecture names, and the default variant of an
// architecture spelled "" (amd64 v1, arm64 v8), but for 32-bit arm,
// whose variant is always spelled (v7 when none is given).
type platform struct{ os, arch, variant string }

func (p platform) String() string {
	s := p.os + "/" + p.arch
	if p.variant != "" {
		s += "/" + p.variant
	}
	return s
}

// defaultPlatform is the platform of the running program's architecture:
// on Linux, or any other system but Windows, a Linux image (container
// images are Linux or Windows images), on Windows a Windows image. 32-bit
// arm programs take v7, which GOARM does not tell at run time.
func defaultPlatform() platform {
	os := "linux"
	if runtime.GOOS == "windows" {
		os = "windows"
	}
	return normalize(os, runtime.GOARCH, "")
}

// parsePlatform parses "os/arch[/variant]", as WithPlatform takes it.
func parsePlatform(s string) (platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || len(parts) == 3 && parts[2] == "" {
		return platform{}, fmt.Errorf("image: platform %q is not os/arch[/variant]", untrusted.Short(s))
	}
	parts = append(parts, "")
	return normalize(parts[0], parts[1], parts[2]), nil
}

// normalize spells a platform the way the index entries it is compared
// with are spelled once normalized: the architecture aliases of uname and
// Debian become Go's names, and variants lose or gain their "v".
func normalize(os, arch, variant string) platform {
	os, arch, variant = strings.ToLower(os), strings.ToLower(arch), strings.ToLower(variant)
	switch arch {
	case "i386", "i486", "i586", "i686":
		arch = "386"
	case "x86_64", "x86-64":
		arch = "amd64"
	case "aarch64":
		arch = "arm64"
	case "armhf":
		arch, variant = "arm", "v7"
	case "armel":
		arch, variant = "arm", "v6"
	}
	if variant != "" && !strings.HasPrefix(variant, "v") && (arch == "amd64" || arch == "arm" || arch == "arm64") {
		variant = "v" + variant
	}
	switch {
	case arch == "amd64" && variant == "v1", arch == "arm64" && (variant == "v8" || variant == "v8.0"):
		variant = ""
	case arch == "arm" && variant == "":
		variant = "v7"
	}
	return platform{os, arch, variant}
}

func fromSpec(p *ocispec.Platform) platform {
	return normalize(p.OS, p.Architecture, p.Variant)
}

// compatible lists the platforms whose programs run on p, best first: p
// itself, then older variants of its architecture, then the 32-bit
// architecture its processors also run (386 for amd64, arm/v8 down to
// arm/v5 for arm64). This is the order containerd's platform matcher
// prefers.
func (p platform) compatible() []platform {
	out := []platform{p}
	older := func(arch string, from, to int) {
		for v := from; v >= to; v-- {
			variant := "v" + strconv.Itoa(v)
			if v == 1 && arch == "amd64" {
				variant = ""
			}
			out = append(out, platform{p.os, arch, variant})
		}
	}
	level := func() int {
		n, err := strconv.Atoi(strings.TrimPrefix(p.variant, "v"))
		if err != nil {
			return 0
		}
		return n
	}
	switch p.arch {
	case "amd64":
		if n := level(); n > 1 {
			older("amd64", n-1, 1)
		}
		out = append(out, platform{p.os, "386", ""})
	case "arm64":
		if p.variant != "" {
			out = append(out, platform{p.os, "arm64", ""})
		}
		older("arm", 8, 5)
	case "arm":
		if n := level(); n > 5 {
			older("arm", n-1, 5)
		}
	}
	return out
}
