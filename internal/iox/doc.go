// Package iox holds small byte and stream helpers that several of
// lazylayer's packages share.
package iox
