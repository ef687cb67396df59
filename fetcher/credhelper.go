package fetcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/lazylayer/lazylayer/internal/untrusted"
)

// A credentialHelper is a docker credential helper: the program
// docker-credential-<name> on $PATH, which answers `get` with the
// credentials it keeps for the server URL given on its standard input
// (the protocol of github.com/docker/docker-credential-helpers).
type credentialHelper struct {
	program   string
	serverURL string
}

// newCredentialHelper returns the helper name for registry host.
func newCredentialHelper(name, host string) *credentialHelper {
	serverURL := host
	if host == "registry-1.docker.io" {
		serverURL = "https://index.docker.io/v1/" // the key docker stores Docker Hub under
	}
	return &credentialHelper{program: "docker-credential-" + name, serverURL: serverURL}
}

// validHelperName reports whether name can only name a program on $PATH:
// a config naming "../x" or "/bin/x" must not run that.
func validHelperName(name string) bool {
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return name != "" && name[0] != '.' && name[0] != '-'
}

// errHelperNoCredentials is what helpers print when they keep nothing for
// the server (exiting with status 1).
const errHelperNoCredentials = "credentials not found"

// get runs the helper. It returns nil, and no error, when the helper keeps
// no credentials for the server: access is then anonymous, as for docker.
func (h *credentialHelper) get(ctx context.Context) (*credential, error) {
	cmd := exec.CommandContext(ctx, h.program, "get")
	cmd.Stdin = strings.NewReader(h.serverURL)
	var out, errOut cappedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && strings.Contains(out.String(), errHelperNoCredentials) {
			return nil, nil
		}
		msg := strings.TrimSpace(out.String() + " " + errOut.String())
		return nil, fmt.Errorf("fetcher: credential helper %s for %s: %w (%s)", h.program, h.serverURL, err, untrusted.Short(msg))
	}
	if out.overflow {
		return nil, fmt.Errorf("fetcher: credential helper %s for %s: answer longer than %d bytes", h.program, h.serverURL, maxConfigSize)
	}
	var answer struct {
		Username string `json:"Username"`
		Secret   string `json:"Secret"`
	}
	if err := json.Unmarshal(out.Bytes(), &answer); err != nil {
		return nil, fmt.Errorf("fetcher: credential helper %s for %s: answer: %w", h.program, h.serverURL, err)
	}
	if answer.Username == "<token>" {
		// The helper keeps an identity token rather than a password.
		return &credential{identityToken: answer.Secret}, nil
	}
	return &credential{username: answer.Username, password: answer.Secret}, nil
}

// cappedBuffer keeps the first maxConfigSize bytes written to it and
// drops the rest, so that a runaway helper cannot exhaust memory.
type cappedBuffer struct {
	bytes.Buffer
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := maxConfigSize - b.Len(); n > room {
		b.overflow = true
		p = p[:max(room, 0)]
	}
	b.Buffer.Write(p)
	return n, nil
}
