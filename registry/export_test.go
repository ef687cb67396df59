package registry

// ResolveURL returns the URL Resolve GETs from the registry.
func ResolveURL(r *Repository) string {
	ref := r.tag
	if r.digest != "" {
		ref = r.digest.String()
	}
	return r.upstream.url(r.repo, "manifests/"+ref, nil)
}
