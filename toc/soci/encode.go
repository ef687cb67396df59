package soci

import (
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"
)

// Field slots and table sizes of ztoc.fbs and zinfo.fbs.
const (
	ztocFields         = 6 // version, build_tool_identifier, compressed_archive_size, uncompressed_archive_size, toc, compression_info
	tocFields          = 1 // metadata
	compressionFields  = 4 // compression_algorithm, max_span_id, span_digests, checkpoints
	fileFields         = 14
	xattrFields        = 2 // key, value
	tarZinfoFields     = 3 // version, span_size, size
	tarZinfoVersion    = 2
	defaultCompression = Gzip
)

// Encode returns z as a zTOC. It calls the FlatBuffers builder in the
// order soci-snapshotter's marshaler does, so that the same values give
// the same bytes, and so the same digest: strings of the header first,
// the files last to first, the checkpoint vector, the span digests, then
// the tables. Times keep their zone: Index makes them in UTC.
func Encode(z *Ztoc) ([]byte, error) {
	if z.Compression != Gzip && z.Compression != Uncompressed && z.Compression != 0 {
		return nil, fmt.Errorf("soci: encode zTOC: unknown compression %d", z.Compression)
	}
	b := flatbuffers.NewBuilder(len(z.Checkpoints) + len(z.Files)*256 + len(z.SpanDigests)*80 + 1024)
	version := b.CreateString(z.Version)
	tool := b.CreateString(z.BuildToolIdentifier)

	files := make([]flatbuffers.UOffsetT, len(z.Files))
	for i := len(z.Files) - 1; i >= 0; i-- {
		var err error
		if files[i], err = encodeFile(b, &z.Files[i]); err != nil {
			return nil, err
		}
	}
	metadata := vectorOf(b, files)
	b.StartObject(tocFields)
	b.PrependUOffsetTSlot(0, metadata, 0)
	tocTable := b.EndObject()

	checkpoints := b.CreateByteVector(z.Checkpoints)
	digests := make([]flatbuffers.UOffsetT, len(z.SpanDigests))
	for i, d := range z.SpanDigests {
		digests[i] = b.CreateString(string(d))
	}
	spanDigests := vectorOf(b, digests)
	b.StartObject(compressionFields)
	b.PrependInt32Slot(1, z.MaxSpanID, 0)
	b.PrependUOffsetTSlot(2, spanDigests, 0)
	b.PrependUOffsetTSlot(3, checkpoints, 0)
	if z.Compression != 0 {
		b.PrependInt8Slot(0, int8(z.Compression), int8(defaultCompression))
	}
	info := b.EndObject()

	b.StartObject(ztocFields)
	b.PrependUOffsetTSlot(0, version, 0)
	b.PrependUOffsetTSlot(1, tool, 0)
	b.PrependUOffsetTSlot(4, tocTable, 0)
	b.PrependInt64Slot(2, z.CompressedArchiveSize, 0)
	b.PrependInt64Slot(3, z.UncompressedArchiveSize, 0)
	b.PrependUOffsetTSlot(5, info, 0)
	b.Finish(b.EndObject())
	return b.FinishedBytes(), nil
}

func encodeFile(b *flatbuffers.Builder, f *File) (flatbuffers.UOffsetT, error) {
	name := b.CreateString(f.Name)
	typ := b.CreateString(f.Type)
	link := b.CreateString(f.Linkname)
	uname := b.CreateString(f.Uname)
	gname := b.CreateString(f.Gname)
	mtime, err := f.ModTime.MarshalText()
	if err != nil {
		return 0, fmt.Errorf("soci: encode zTOC: file %q: %w", f.Name, err)
	}
	modTime := b.CreateString(string(mtime))
	records := make([]flatbuffers.UOffsetT, len(f.PAXRecords))
	for i, r := range f.PAXRecords {
		key := b.CreateString(r.Key)
		value := b.CreateString(r.Value)
		b.StartObject(xattrFields)
		b.PrependUOffsetTSlot(0, key, 0)
		b.PrependUOffsetTSlot(1, value, 0)
		records[i] = b.EndObject()
	}
	xattrs := vectorOf(b, records)

	b.StartObject(fileFields)
	b.PrependUOffsetTSlot(0, name, 0)
	b.PrependUOffsetTSlot(1, typ, 0)
	b.PrependInt64Slot(2, f.Offset, 0)
	b.PrependInt64Slot(3, f.Size, 0)
	b.PrependUOffsetTSlot(4, link, 0)
	b.PrependInt64Slot(5, f.Mode, 0)
	b.PrependUint32Slot(6, f.UID, 0)
	b.PrependUint32Slot(7, f.GID, 0)
	b.PrependUOffsetTSlot(8, uname, 0)
	b.PrependUOffsetTSlot(9, gname, 0)
	b.PrependUOffsetTSlot(10, modTime, 0)
	b.PrependInt64Slot(11, f.Devmajor, 0)
	b.PrependInt64Slot(12, f.Devminor, 0)
	b.PrependUOffsetTSlot(13, xattrs, 0)
	return b.EndObject(), nil
}

// vectorOf writes a vector of the tables or strings at offs.
func vectorOf(b *flatbuffers.Builder, offs []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	b.StartVector(4, len(offs), 4)
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	return b.EndVector(len(offs))
}
