package regauth

import (
	"io"
	"net/http"
)

// Transport sends requests through Base, with Auth's Authorization on
// those to Auth's registry host (never on others, such as the object
// store a blob redirect points to). It answers a 401 from that host once,
// with Auth.Refresh, and sends the request again if it can: if it has no
// body, or has GetBody. Otherwise, or if the second answer is a 401
// too, the 401 is returned.
type Transport struct {
	Base http.RoundTripper
	Auth *Authenticator
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.Auth.Host() {
		return t.Base.RoundTrip(req)
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for try := 0; ; try++ {
		r := req.Clone(req.Context())
		if try > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		used := t.Auth.Current()
		if used != "" {
			r.Header.Set("Authorization", used)
		}
		resp, err := t.Base.RoundTrip(r)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || try > 0 || !replayable {
			return resp, err
		}
		io.CopyN(io.Discard, resp.Body, 4<<10) // let the connection be reused
		resp.Body.Close()
		if err := t.Auth.Refresh(req.Context(), resp, used); err != nil {
			return nil, err
		}
	}
}
