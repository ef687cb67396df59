package prefetch

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/overlay"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

func TestPythonMain(t *testing.T) {
	for _, tc := range []struct {
		args                 []string
		code, module, script string
	}{
		{[]string{"-c", "import json"}, "import json", "", ""},
		{[]string{"-Sc", "import os"}, "import os", "", ""},
		{[]string{"-cimport os"}, "import os", "", ""},
		{[]string{"-W", "ignore", "-X", "dev", "-u", "-m", "http.server", "8000"}, "", "http.server", ""},
		{[]string{"-Wignore", "app.py", "-c", "x"}, "", "", "app.py"},
		{[]string{"--check-hash-based-pycs", "never", "-B", "--", "-x.py"}, "", "", "-x.py"},
	} {
		code, module, script, ok := pythonMain(tc.args)
		require.True(t, ok, tc.args)
		require.Equal(t, []string{tc.code, tc.module, tc.script}, []string{code, module, script}, tc.args)
	}
	for _, args := range [][]string{nil, {"-"}, {"-c"}, {"-V"}, {"-i"}} {
		_, _, _, ok := pythonMain(args)
		require.False(t, ok, args)
	}
}

func TestPythonImports(t *testing.T) {
	src := `"""Doc string.
import notme
"""
import os, sys as system
import a.b.c as d; import e
from . import sibling
from ..parent.mod import (x,
    y as z)  # comment import notme2
from q import *
s = 'import notme3' + "x\" import notme4"
try:
    import _speedups
except ImportError:
    _speedups = None
if TYPE_CHECKING:
    import typing_only
class C:
    import in_class
    def m(self):
        import in_method
def f(
    x,
):
    import in_function
    if x:
        import in_function_block
@decorator
async def g():
    import in_async
if __name__ == "__main__":
    import in_main
import \
    continued
`
	var got []string
	for _, imp := range pythonImports([]byte(src), false) {
		got = append(got, strings.Repeat(".", imp.level)+imp.module+"|"+strings.Join(imp.names, ","))
	}
	require.Equal(t, []string{
		"os|", "sys|", "a.b.c|", "e|", ".|sibling", "..parent.mod|x,y", "q|",
		"_speedups|", "in_class|", "continued|",
	}, got)
	main := pythonImports([]byte(src), true)
	require.True(t, slices.ContainsFunc(main, func(i pyImport) bool { return i.module == "in_main" }))
}

// TestImageConfigPythonImports: the -c code's imports are followed through
// packages, relative imports, "from pkg import submodule" and the
// modules' own imports, to their byte code, extension modules and, where
// no byte code is cached, sources.
func TestImageConfigPythonImports(t *testing.T) {
	lib := "usr/lib/python3.11/"
	img := overlay.New(fstest.MapFS{
		"usr/bin/python3.11":                                      {Data: []byte("not elf"), Mode: 0o755},
		"usr/bin/python3":                                         link("python3.11"),
		lib + "json/__init__.py":                                  file("from .decoder import JSONDecoder\n"),
		lib + "json/__pycache__/__init__.cpython-311.pyc":         file("pyc"),
		lib + "json/decoder.py":                                   file("import re\nfrom json import scanner\ntry:\n    from _json import scanstring\nexcept ImportError:\n    pass\n"),
		lib + "json/__pycache__/decoder.cpython-311.pyc":          file("pyc"),
		lib + "json/scanner.py":                                   file("import re\n"),
		lib + "json/tool.py":                                      file("import argparse\n"),
		lib + "re/__init__.py":                                    file("import enum\nfrom . import _compiler\n"),
		lib + "re/_compiler.py":                                   file("def f():\n    import notimported\n"),
		lib + "enum.py":                                           file(""),
		lib + "__pycache__/enum.cpython-311.pyc":                  file("pyc"),
		lib + "argparse.py":                                       file(""),
		lib + "lib-dynload/_json.cpython-311-x86_64-linux-gnu.so": file("so"),
		lib + "lib-dynload/_json.abi3.so":                         file("so"),
		lib + "lib-dynload/_json.so":                              file("so"),
	})
	plan, _ := FromImageConfig(context.Background(), img, v1.ImageConfig{
		Entrypoint: []string{"python3", "-c", "import json; print(1)"},
	}, WithRuntimeFiles(true))
	var got []string
	for _, it := range plan.Items() {
		if it.Reason == ReasonLanguage {
			got = append(got, strings.TrimPrefix(it.Path, lib))
		}
	}
	require.Equal(t, []string{
		"json/__pycache__/__init__.cpython-311.pyc",
		"json/__pycache__/decoder.cpython-311.pyc",
		"re/__init__.py",
		"__pycache__/enum.cpython-311.pyc",
		"re/_compiler.py",
		"json/scanner.py",
		"lib-dynload/_json.cpython-311-x86_64-linux-gnu.so",
	}, got)

	// A script run through "#!/usr/bin/env python3": its own imports,
	// and modules beside it first (sys.path[0] is its directory).
	img = overlay.New(fstest.MapFS{
		"usr/bin/env":            {Data: []byte("not elf"), Mode: 0o755},
		"usr/bin/python3.11":     {Data: []byte("not elf"), Mode: 0o755},
		"usr/bin/python3":        link("python3.11"),
		"app/run":                {Data: []byte("#!/usr/bin/env python3\nimport helper, enum\n"), Mode: 0o755},
		"app/helper.py":          file("import json.tool\n"),
		lib + "enum.py":          file(""),
		lib + "json/__init__.py": file(""),
		lib + "json/tool.py":     file(""),
	})
	plan, _ = FromImageConfig(context.Background(), img, v1.ImageConfig{Entrypoint: []string{"/app/run"}})
	require.Equal(t, []string{"app/run", "usr/bin/env", "usr/bin/python3.11", "app/helper.py",
		lib + "json/__init__.py", lib + "json/tool.py", lib + "enum.py"}, plan.Paths(-1))
}

// TestImageConfigPythonHost plans the Python workload on this
// machine's root file system and checks the plan against the modules the
// interpreter really loads.
func TestImageConfigPythonHost(t *testing.T) {
	const code = `import json, http.server, asyncio, sqlite3, email.mime.text`
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	out, err := exec.Command(py, "-c", code+`
import sys, json as j
print(j.dumps([getattr(m, "__cached__", None) or getattr(m, "__file__", None) for m in list(sys.modules.values())]))`).Output()
	require.NoError(t, err)
	var files []*string
	require.NoError(t, json.Unmarshal(out, &files))
	plan, _ := FromImageConfig(context.Background(), overlay.New(os.DirFS("/")), v1.ImageConfig{
		Entrypoint: []string{py, "-c", code},
	})
	paths := plan.Paths(-1)
	require.Contains(t, paths, "usr/lib/python3.11/json/__pycache__/scanner.cpython-311.pyc")
	var missing []string
	n := 0
	for _, f := range files {
		if f == nil || !strings.HasPrefix(*f, "/usr/lib/python3.11/") {
			continue
		}
		n++
		if !slices.Contains(paths, strings.TrimPrefix(*f, "/")) {
			missing = append(missing, *f)
		}
	}
	t.Logf("%d plan items, %d modules loaded from the standard library, missing %d: %v", plan.Len(), n, len(missing), missing)
	require.Greater(t, n, 50)
	require.LessOrEqual(t, len(missing), n/20, missing)
}
