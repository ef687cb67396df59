// Package convert rewrites a whole image into seekable layers: image in
// (an image.Source), image out (an image.Target).
package convert
