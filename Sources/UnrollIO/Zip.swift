import Foundation

/// Just enough of the zip format for `.npz`: reading stored (method 0) and deflated (method 8)
/// entries, with zip64 extra fields and data descriptors as Python's `zipfile` writes them, and
/// writing an archive of stored or deflated entries.
public enum Zip {
    public struct Entry: Sendable {
        public var name: String
        public var method: UInt16
        public var flags: UInt16
        public var crc32: UInt32
        public var compressedSize: Int
        public var size: Int
        public var localHeaderOffset: Int
    }

    // MARK: Reading

    /// The archive's entries (from its central directory), in archive order.
    /// `limit`: the most bytes all entries together may decode to.
    public static func entries(_ bytes: [UInt8], limit: Int = DecodeLimit.bytes) throws -> [Entry] {
        let (count, directoryOffset) = try endOfCentralDirectory(bytes)
        var r = ByteReader(bytes, offset: directoryOffset)
        var out: [Entry] = []
        for k in 0..<count {
            let what = "central directory entry \(k)"
            guard try r.le(UInt32.self, what) == 0x0201_4b50 else {
                throw UnrollIOError(.malformed, "zip \(what) has a bad signature")
            }
            try r.skip(4, what)  // versions made by / needed
            let flags = try r.le(UInt16.self, what)
            let method = try r.le(UInt16.self, what)
            try r.skip(4, what)  // time, date
            let crc = try r.le(UInt32.self, what)
            var compressed = UInt64(try r.le(UInt32.self, what))
            var size = UInt64(try r.le(UInt32.self, what))
            let nameLength = Int(try r.le(UInt16.self, what))
            let extraLength = Int(try r.le(UInt16.self, what))
            let commentLength = Int(try r.le(UInt16.self, what))
            try r.skip(8, what)  // disk, attributes
            var offset = UInt64(try r.le(UInt32.self, what))
            let nameBytes = Array(try r.bytes(nameLength, what))
            let name = String(bytes: nameBytes, encoding: .utf8) ?? String(decoding: nameBytes, as: UTF8.self)
            var extra = ByteReader(Array(try r.bytes(extraLength, what)))
            try r.skip(commentLength, what)

            // zip64: fields saturated at 0xFFFFFFFF live in the 0x0001 extra field, in this order.
            while extra.remaining >= 4 {
                let id = try extra.le(UInt16.self, "zip64 extra field")
                let length = Int(try extra.le(UInt16.self, "zip64 extra field"))
                var field = ByteReader(Array(try extra.bytes(length, "zip64 extra field")))
                guard id == 0x0001 else { continue }
                if size == 0xFFFF_FFFF { size = try field.le(UInt64.self, "zip64 size of '\(name)'") }
                if compressed == 0xFFFF_FFFF { compressed = try field.le(UInt64.self, "zip64 compressed size of '\(name)'") }
                if offset == 0xFFFF_FFFF { offset = try field.le(UInt64.self, "zip64 offset of '\(name)'") }
            }
            guard let c = Int(exactly: compressed), let s = Int(exactly: size), let o = Int(exactly: offset) else {
                throw UnrollIOError(.malformed, "zip entry '\(name)' has sizes beyond this machine's range")
            }
            out.append(Entry(name: name, method: method, flags: flags, crc32: crc,
                             compressedSize: c, size: s, localHeaderOffset: o))
        }
        let (total, overflow) = out.reduce((0, false)) { acc, e in
            let (s, o) = acc.0.addingReportingOverflow(e.size)
            return (s, acc.1 || o)
        }
        try DecodeLimit.check(overflow ? Int.max : total, "the zip archive's \(out.count) entries", limit: limit)
        // Which of two same-named entries would a reader mean? And entries sharing bytes turn a small
        // file into many large ones (a zip bomb): both are refused.
        var names = Set<String>()
        for e in out where !names.insert(e.name).inserted {
            throw UnrollIOError(.malformed, "zip entry '\(e.name)' appears twice")
        }
        let ordered = out.sorted { $0.localHeaderOffset < $1.localHeaderOffset }
        for (a, b) in zip(ordered, ordered.dropFirst()) {
            let (end, overflow) = a.localHeaderOffset.addingReportingOverflow(30 + a.name.utf8.count + a.compressedSize)
            guard !overflow, end <= b.localHeaderOffset else {
                throw UnrollIOError(.malformed, "zip entries '\(a.name)' and '\(b.name)' overlap (entries must not share bytes)")
            }
        }
        return out
    }

    /// The uncompressed bytes of `entry`, checked against its size and CRC-32.
    public static func extract(_ entry: Entry, from bytes: [UInt8]) throws -> [UInt8] {
        let what = "zip entry '\(entry.name)'"
        guard entry.flags & 1 == 0 else { throw UnrollIOError(.unsupported, "\(what) is encrypted") }
        var r = ByteReader(bytes, offset: entry.localHeaderOffset)
        guard entry.localHeaderOffset >= 0, try r.le(UInt32.self, "the local header of \(what)") == 0x0403_4b50 else {
            throw UnrollIOError(.malformed, "\(what): no local header at offset \(entry.localHeaderOffset)")
        }
        try r.skip(22, "the local header of \(what)")
        let nameLength = Int(try r.le(UInt16.self, "the local header of \(what)"))
        let extraLength = Int(try r.le(UInt16.self, "the local header of \(what)"))
        try r.skip(nameLength + extraLength, "the local header of \(what)")
        let stored = try r.bytes(entry.compressedSize, "the data of \(what)")

        let data: [UInt8]
        switch entry.method {
        case 0:
            data = Array(stored)
        case 8:
            do {
                data = try Zlib.inflate(stored, format: .raw, sizeHint: entry.size, limit: entry.size)
            } catch let e as UnrollIOError {
                throw UnrollIOError(e.kind, "\(what): \(e.detail)")
            }
        default:
            throw UnrollIOError(.unsupported, "\(what) uses compression method \(entry.method) (supported: 0 stored, 8 deflate)")
        }
        guard data.count == entry.size else {
            throw UnrollIOError(.corrupt, "\(what) holds \(data.count) bytes, its directory says \(entry.size)")
        }
        let crc = Zlib.crc32(data)
        guard crc == entry.crc32 else {
            throw UnrollIOError(.corrupt, "\(what): CRC-32 mismatch (computed \(hex32(crc)), stored \(hex32(entry.crc32)))")
        }
        return data
    }

    /// Finds the end-of-central-directory record (and its zip64 form); returns (entry count, directory offset).
    static func endOfCentralDirectory(_ bytes: [UInt8]) throws -> (Int, Int) {
        guard bytes.count >= 22 else { throw UnrollIOError(.badMagic, "not a zip archive (too short)") }
        // The record is 22 bytes plus a comment of up to 65535 bytes, at the very end.
        var position = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 65535)
        while position >= lowest {
            if bytes[position] == 0x50, bytes[position + 1] == 0x4b, bytes[position + 2] == 5, bytes[position + 3] == 6 { break }
            position -= 1
        }
        guard position >= lowest else {
            throw UnrollIOError(.badMagic, "not a zip archive (no end of central directory record; truncated?)")
        }
        var r = ByteReader(bytes, offset: position + 10)
        var count = UInt64(try r.le(UInt16.self, "the zip end record"))
        try r.skip(4, "the zip end record")
        var offset = UInt64(try r.le(UInt32.self, "the zip end record"))

        // A zip64 locator sits just before the record when the counts or offsets did not fit.
        if position >= 20, try ByteReader(bytes).peekLE(UInt32.self, at: position - 20, "zip64 locator") == 0x0706_4b50 {
            let recordOffset = try ByteReader(bytes).peekLE(UInt64.self, at: position - 12, "zip64 locator")
            guard let ro = Int(exactly: recordOffset) else { throw UnrollIOError(.malformed, "zip64 locator offset out of range") }
            var z = ByteReader(bytes, offset: ro)
            guard try z.le(UInt32.self, "zip64 end record") == 0x0606_4b50 else {
                throw UnrollIOError(.malformed, "zip64 end record has a bad signature")
            }
            try z.skip(28, "zip64 end record")
            count = try z.le(UInt64.self, "zip64 end record")
            try z.skip(8, "zip64 end record")
            offset = try z.le(UInt64.self, "zip64 end record")
        }
        guard let c = Int(exactly: count), let o = Int(exactly: offset), o <= bytes.count else {
            throw UnrollIOError(.malformed, "zip central directory offset \(offset) is past the end of the file (\(bytes.count) bytes)")
        }
        return (c, o)
    }

    // MARK: Writing

    /// A zip archive of `files`, stored or deflated, with fixed timestamps (same input, same bytes).
    public static func archive(_ files: [(name: String, data: [UInt8])], compressed: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var directory: [UInt8] = []
        for (name, data) in files {
            let nameBytes = Array(name.utf8)
            let payload = compressed ? Zlib.deflate(data, format: .raw) : data
            let crc = Zlib.crc32(data)
            let offset = out.count
            precondition(offset < 0xFFFF_FFFF && payload.count < 0xFFFF_FFFF && data.count < 0xFFFF_FFFF,
                         "zip archives over 4 GiB are not supported by this writer")
            let flags: UInt16 = name.utf8.allSatisfy { $0 < 128 } ? 0 : 0x0800  // bit 11: UTF-8 name
            let method: UInt16 = compressed ? 8 : 0
            func common(_ b: inout [UInt8]) {
                b.appendLE(UInt16(20)); b.appendLE(flags); b.appendLE(method)
                b.appendLE(UInt16(0)); b.appendLE(UInt16(0x21))  // 1980-01-01 00:00
                b.appendLE(crc); b.appendLE(UInt32(payload.count)); b.appendLE(UInt32(data.count))
                b.appendLE(UInt16(nameBytes.count)); b.appendLE(UInt16(0))
            }
            out.appendLE(UInt32(0x0403_4b50))
            common(&out)
            out += nameBytes
            out += payload

            directory.appendLE(UInt32(0x0201_4b50))
            directory.appendLE(UInt16(20))  // made by: MS-DOS, version 2.0
            common(&directory)
            directory.appendLE(UInt16(0)); directory.appendLE(UInt16(0)); directory.appendLE(UInt16(0))
            directory.appendLE(UInt32(0o644 << 16))
            directory.appendLE(UInt32(offset))
            directory += nameBytes
        }
        precondition(files.count < 0xFFFF, "zip archives with 65535 or more entries are not supported by this writer")
        let directoryOffset = out.count
        out += directory
        out.appendLE(UInt32(0x0605_4b50))
        out.appendLE(UInt16(0)); out.appendLE(UInt16(0))
        out.appendLE(UInt16(files.count)); out.appendLE(UInt16(files.count))
        out.appendLE(UInt32(directory.count)); out.appendLE(UInt32(directoryOffset))
        out.appendLE(UInt16(0))
        return out
    }
}
