package tooltest

import (
	"fmt"
	"path/filepath"
)

// ContainerdConfig is the config.toml of a containerd of a test's (or a
// benchmark's) own: root, state and plugin directories under dir, its
// gRPC socket at address (ttrpc beside it), without the CRI plugin, with
// its garbage collector unless gc is false (pulls and image services need
// it; without it, content ingested without a lease stays). extra is
// appended, for [proxy_plugins] tables.
func ContainerdConfig(dir, address string, gc bool, extra string) string {
	disabled := `"io.containerd.grpc.v1.cri"`
	if !gc {
		disabled += `, "io.containerd.gc.v1.scheduler"`
	}
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [%s]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
%s`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), disabled, address, address+".ttrpc", filepath.Join(dir, "opt"), extra)
}
