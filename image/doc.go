// Package image opens container images lazily, whole: the reference is
// resolved to a manifest of the wanted platform and its config, and every
// layer to a lazy reader.Layer of its format, stacked into one file
// system.
//
// Images come from a Source and go to a Target, the seam every image
// store plugs in at: a registry repository, an OCI layout directory, a
// docker-save archive.
package image
