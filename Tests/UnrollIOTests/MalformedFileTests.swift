import Foundation
import Testing
import UnrollCore
import UnrollIO

/// Expects `body` to throw an `UnrollIOError` of `kind` whose one-line message contains `text`.
private func expectError(_ kind: UnrollIOError.Kind, _ text: String, sourceLocation: SourceLocation = #_sourceLocation,
                         _ body: () throws -> Void) {
    let error = #expect(throws: UnrollIOError.self, sourceLocation: sourceLocation) { try body() }
    #expect(error?.kind == kind, "\(String(describing: error))", sourceLocation: sourceLocation)
    #expect(error?.description.contains(text) == true, "\(String(describing: error))", sourceLocation: sourceLocation)
    #expect(error?.description.contains("\n") == false, sourceLocation: sourceLocation)
}

/// A `.npy` file with a hand-written header dict.
private func handNpy(_ dict: String, payload: [UInt8], version: UInt8 = 1) -> [UInt8] {
    var header = Array(dict.utf8) + [0x0a]
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    if version == 1 {
        out += [UInt8(header.count & 0xff), UInt8(header.count >> 8)]
    } else {
        out += (0..<4).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) }
    }
    header += payload
    return out + header
}

/// A safetensors file with a hand-written JSON header.
private func handSafetensors(_ json: String, dataBytes: Int) -> [UInt8] {
    let h = Array(json.utf8)
    var out = [UInt8]()
    for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: h.count >> (8 * k))) }
    return out + h + [UInt8](repeating: 0, count: dataBytes)
}

@Suite struct MalformedFileTests {
    @Test func npy() throws {
        let good = Npy.encode(Tensor(rows: [[1, 2, 3], [4, 5, 6]]))
        expectError(.badMagic, "not a .npy file") { _ = try Npy.decode(Array("hello world, not numpy".utf8)) }
        expectError(.truncated, "24 bytes") { _ = try Npy.decode(Array(good.dropLast(3))) }
        expectError(.truncated, "header") { _ = try Npy.decode(Array(good.prefix(40))) }
        expectError(.truncated, "version") { _ = try Npy.decode(Array(good.prefix(7))) }
        expectError(.malformed, "27 bytes of data") { _ = try Npy.decode(good + [0, 0, 0]) }
        expectError(.unsupported, "'<c8'") {
            _ = try Npy.decode(handNpy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", payload: [UInt8](repeating: 0, count: 8)))
        }
        expectError(.unsupported, "version 4.0") {
            _ = try Npy.decode(handNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", payload: [0, 0, 0, 0], version: 4))
        }
        expectError(.malformed, "negative dimension") {
            _ = try Npy.decode(handNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2), }", payload: []))
        }
        expectError(.malformed, "overflows") {
            _ = try Npy.decode(handNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", payload: []))
        }
        expectError(.malformed, "overflow") {  // element count fits, byte count does not
            _ = try Npy.decode(handNpy("{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }", payload: []))
        }
        expectError(.malformed, "not a Python dict") { _ = try Npy.decode(handNpy("[1, 2, 3]", payload: [])) }
        expectError(.malformed, "lacks 'shape'") { _ = try Npy.decode(handNpy("{'descr': '<f4', 'fortran_order': False}", payload: [])) }
        expectError(.malformed, "fortran_order") {
            _ = try Npy.decode(handNpy("{'descr': '<f4', 'fortran_order': 3, 'shape': (1,), }", payload: [0, 0, 0, 0]))
        }
        // 40 000 nested brackets used to overflow the parser's stack (exit 139); a header needs 2 levels.
        let deep = String(repeating: "(", count: 40_000) + String(repeating: ")", count: 40_000)
        expectError(.malformed, "deeper than 32 levels") {
            _ = try Npy.decode(handNpy("{'descr': '<f4', 'fortran_order': False, 'shape': \(deep), }", payload: [], version: 2))
        }
    }

    /// A CSV number cut by a NUL byte, and a first row mixing numbers and text, are errors naming the place.
    @Test func csv() throws {
        expectError(.malformed, "line 2 contains a NUL byte") { _ = try CSV.decodeNumeric(Array("1,2\n7\u{0}abc,3\n".utf8)) }
        expectError(.malformed, "line 1, column 3: 'x' is not a number") { _ = try CSV.decodeNumeric(Array("1,2,x\n3,4,5\n".utf8)) }
        // A file's control bytes are shown escaped, so they cannot drive the terminal.
        expectError(.malformed, "'\\x1b[31mred' is not a number") { _ = try CSV.decodeNumeric(Array("a,b\n1,\u{1B}[31mred\n".utf8)) }
        let (header, table) = try CSV.decodeNumeric(Array("a,b\n1,2\n".utf8))
        #expect(header == ["a", "b"] && table.shape == [1, 2])
    }

    @Test func npz() throws {
        let stored = Npz.encode([("a", Tensor(rows: [[1, 2], [3, 4]])), ("b", Tensor(zeros: [3]))])
        let deflated = Npz.encode([("a", Tensor(repeating: 1, shape: [64, 64]))], compressed: true)
        expectError(.badMagic, "not an .npz file") { _ = try Npz.decode(Npy.encode(Tensor(zeros: [2]))) }
        expectError(.badMagic, "truncated?") { _ = try Npz.decode(Array(stored.prefix(stored.count / 2))) }
        var badCRC = stored
        badCRC[170] ^= 0x01  // inside the first entry's float data (local header 35 bytes + .npy header 128)
        expectError(.corrupt, "CRC-32 mismatch") { _ = try Npz.decode(badCRC) }
        var badStream = deflated
        for k in 60..<80 { badStream[k] = 0xff }  // inside the deflate stream
        expectError(.corrupt, "'a.npy'") { _ = try Npz.decode(badStream) }
        var badOffset = stored
        badOffset[badOffset.count - 6] = 0xff  // central directory offset past the end
        expectError(.malformed, "past the end") { _ = try Npz.decode(badOffset) }
        let notNpy = Zip.archive([("readme.txt", Array("hello".utf8))])
        expectError(.badMagic, "entry 'readme.txt'") { _ = try Npz.decode(notNpy) }
        // Two entries named X (which one is X?), and entries that share bytes (1 200 names for one
        // 8 MiB member made a 10 MB file expand to 10 GB) are refused.
        let npy = Npy.encode(Tensor(rows: [[1, 2]]))
        expectError(.malformed, "'X.npy' appears twice") { _ = try Npz.decode(Zip.archive([("X.npy", npy), ("X.npy", npy)])) }
        var shared = Zip.archive([("a.npy", npy), ("b.npy", npy)])
        let directory = (0..<(shared.count - 4)).filter { shared[$0] == 0x50 && shared[$0 + 1] == 0x4b && shared[$0 + 2] == 1 && shared[$0 + 3] == 2 }
        #expect(directory.count == 2)
        for k in 0..<4 { shared[directory[1] + 42 + k] = 0 }   // b's local header offset → a's
        expectError(.malformed, "overlap") { _ = try Npz.decode(shared) }
        // A member whose .npy header nests 40 000 brackets (a stack overflow once) is refused by name.
        let deep = String(repeating: "(", count: 40_000) + String(repeating: ")", count: 40_000)
        let nested = handNpy("{'descr': '<f4', 'fortran_order': False, 'shape': \(deep), }", payload: [], version: 2)
        expectError(.malformed, "entry 'X.npy': .npy header nests brackets deeper than 32 levels") {
            _ = try Npz.decode(Zip.archive([("X.npy", nested)]))
        }
    }

    @Test func safetensors() throws {
        let good = Safetensors.encode([("w", Tensor(rows: [[1, 2], [3, 4]]))])
        expectError(.truncated, "header length") { _ = try Safetensors.decode([1, 2, 3]) }
        expectError(.truncated, "JSON header") { _ = try Safetensors.decode(Array(good.prefix(20))) }
        expectError(.truncated, "holds only 12 data bytes") { _ = try Safetensors.decode(Array(good.dropLast(4))) }
        expectError(.malformed, "implausible") { _ = try Safetensors.decode([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x7b]) }
        expectError(.badMagic, "not a JSON object") { _ = try Safetensors.decode(handSafetensors("[1, 2]", dataBytes: 0)) }
        expectError(.malformed, "not valid JSON") { _ = try Safetensors.decode(handSafetensors("{not json", dataBytes: 0)) }
        // Stricter than JSONSerialization, as the reference (serde) is: booleans and 2.0 are not
        // dimensions, a key may not repeat (which one would win?), nesting is bounded.
        for shape in ["[true,2]", "[2.0,1]", "[\"2\",1]"] {
            expectError(.malformed, "shape must hold integers") {
                _ = try Safetensors.decode(handSafetensors(#"{"x":{"dtype":"F32","shape":"# + shape + #","data_offsets":[0,8]}}"#, dataBytes: 8))
            }
        }
        expectError(.malformed, "the key 'x' appears twice") {
            _ = try Safetensors.decode(handSafetensors(
                #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4))
        }
        expectError(.malformed, "deeper than 64 levels") {
            _ = try Safetensors.decode(handSafetensors(#"{"__metadata__":"# + String(repeating: "[", count: 100_000) + "}", dataBytes: 0))
        }
        expectError(.unsupported, "dtype C64") {
            _ = try Safetensors.decode(handSafetensors(#"{"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, dataBytes: 8))
        }
        expectError(.malformed, "needs 8 bytes but data_offsets [0, 12] span 12") {
            _ = try Safetensors.decode(handSafetensors(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}}"#, dataBytes: 12))
        }
        expectError(.malformed, "overlaps") {
            _ = try Safetensors.decode(handSafetensors(
                #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataBytes: 8))
        }
        expectError(.malformed, "gap") {
            _ = try Safetensors.decode(handSafetensors(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataBytes: 8))
        }
        expectError(.malformed, "cover 4") {
            _ = try Safetensors.decode(handSafetensors(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 8))
        }
        expectError(.truncated, "ends at byte 4000") {
            _ = try Safetensors.decode(handSafetensors(#"{"x":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}"#, dataBytes: 8))
        }
        expectError(.malformed, "negative dimension") {
            _ = try Safetensors.decode(handSafetensors(#"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#, dataBytes: 0))
        }
        expectError(.malformed, "overflow") {
            _ = try Safetensors.decode(handSafetensors(
                #"{"x":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#, dataBytes: 0))
        }
        expectError(.malformed, "data_offsets must be") {
            _ = try Safetensors.decode(handSafetensors(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, dataBytes: 8))
        }
        expectError(.malformed, "__metadata__") {
            _ = try Safetensors.decode(handSafetensors(#"{"__metadata__":{"step":3}}"#, dataBytes: 0))
        }
    }

    @Test func png() throws {
        let good = PNG.encode(Raster(width: 5, height: 4, channels: 3, fill: 7))
        let ihdrEnd = 8 + 8 + 13 + 4
        expectError(.badMagic, "not a PNG") { _ = try PNG.decode(Array("GIF89a.........".utf8)) }
        expectError(.truncated, "file ends") { _ = try PNG.decode(Array(good.prefix(good.count - 20))) }
        var badCRC = good
        badCRC[20] ^= 0x01  // IHDR width
        expectError(.corrupt, "IHDR has a bad CRC") { _ = try PNG.decode(badCRC) }

        func png(width: UInt32 = 5, height: UInt32 = 4, bitDepth: UInt8 = 8, colorType: UInt8 = 0,
                 palette: [UInt8]? = nil, idat: [UInt8]) -> [UInt8] {
            var out = Array(good.prefix(8))
            var ihdr: [UInt8] = []
            for v in [width, height] { for k in (0..<4).reversed() { ihdr.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) } }
            appendChunk(&out, "IHDR", ihdr + [bitDepth, colorType, 0, 0, 0])
            if let palette { appendChunk(&out, "PLTE", palette) }
            appendChunk(&out, "IDAT", idat)
            appendChunk(&out, "IEND", [])
            return out
        }
        let rows = [UInt8](repeating: 0, count: 4 * 6)  // 4 rows: filter byte + 5 gray pixels
        #expect(try PNG.decode(png(idat: Zlib.deflate(rows, format: .zlib))).samples.count == 20)
        var corruptStream = Zlib.deflate(rows, format: .zlib)
        corruptStream[0] = 0x12
        expectError(.corrupt, "PNG image data: corrupt compressed stream") { _ = try PNG.decode(png(idat: corruptStream)) }
        expectError(.truncated, "needs 24") { _ = try PNG.decode(png(idat: Zlib.deflate(Array(rows.prefix(20)), format: .zlib))) }
        expectError(.corrupt, "more than the expected 24") {
            _ = try PNG.decode(png(idat: Zlib.deflate(rows + [0, 0], format: .zlib)))
        }
        var badFilter = rows
        badFilter[12] = 9
        expectError(.malformed, "row 2 has invalid filter type 9") { _ = try PNG.decode(png(idat: Zlib.deflate(badFilter, format: .zlib))) }
        var indexed = rows
        indexed[7] = 5
        expectError(.malformed, "palette index 5") {
            _ = try PNG.decode(png(colorType: 3, palette: [0, 0, 0, 255, 255, 255], idat: Zlib.deflate(indexed, format: .zlib)))
        }
        expectError(.malformed, "no PLTE") { _ = try PNG.decode(png(colorType: 3, idat: Zlib.deflate(rows, format: .zlib))) }
        expectError(.malformed, "bit depth 4 is invalid for color type 2") { _ = try PNG.decode(png(bitDepth: 4, colorType: 2, idat: [])) }
        expectError(.malformed, "size 0×4") { _ = try PNG.decode(png(width: 0, idat: [])) }
        // Headers claiming huge images with a tiny stream: errors, not giant allocations.
        expectError(.unsupported, "PNG 2147483647×1000 would decode to") {
            _ = try PNG.decode(png(width: 0x7fff_ffff, height: 1000, bitDepth: 16, colorType: 6, idat: Zlib.deflate(rows, format: .zlib)))
        }
        expectError(.truncated, "PNG image data holds 24 bytes") {   // under the limit, the stream is still checked
            _ = try PNG.decode(png(width: 0x7fff_ffff, height: 1000, bitDepth: 16, colorType: 6, idat: Zlib.deflate(rows, format: .zlib)), limit: Int.max)
        }
        expectError(.malformed, "overflows") {
            _ = try PNG.decode(png(width: 0x7fff_ffff, height: 0x7fff_ffff, bitDepth: 16, colorType: 6, idat: Zlib.deflate(rows, format: .zlib)))
        }
        var unknownCritical = Array(good.prefix(ihdrEnd))
        appendChunk(&unknownCritical, "ABCD", [1])
        expectError(.unsupported, "critical chunk 'ABCD'") { _ = try PNG.decode(unknownCritical) }
    }

    @Test func idx() throws {
        let good = IDX.encode(uint8: [UInt8](repeating: 3, count: 12), shape: [3, 2, 2])
        expectError(.badMagic, "two zero bytes") { _ = try IDX.decode([1, 0, 8, 1, 0, 0, 0, 0]) }
        expectError(.unsupported, "type code 0x7") { _ = try IDX.decode([0, 0, 7, 1, 0, 0, 0, 0]) }
        expectError(.truncated, "dimension 2") { _ = try IDX.decode(Array(good.prefix(14))) }
        expectError(.truncated, "(12 bytes) but the file has 11") { _ = try IDX.decode(Array(good.dropLast())) }
        expectError(.malformed, "but the file has 13") { _ = try IDX.decode(good + [0]) }
        expectError(.malformed, "overflow") {
            _ = try IDX.decode([0, 0, 8, 4] + [UInt8](repeating: 0xff, count: 16))
        }
        let dir = try TempDir()
        defer { dir.remove() }
        var gz = Zlib.gzip(good)
        try AtomicFile.write(Array(gz.prefix(gz.count - 10)), to: dir.file("cut-ubyte.gz"))
        expectError(.corrupt, "ends early") { _ = try IDX.read(dir.file("cut-ubyte.gz")) }
        gz[12] ^= 0xff
        try AtomicFile.write(gz, to: dir.file("bad-ubyte.gz"))
        let error = #expect(throws: UnrollIOError.self) { _ = try IDX.read(dir.file("bad-ubyte.gz")) }
        #expect(error?.kind == .corrupt && error?.file == dir.file("bad-ubyte.gz"))
    }

    @Test func pgm() throws {
        expectError(.badMagic, "P5 or P2") { _ = try PGM.decode(Array("P6 1 1 255\n abc".utf8)) }
        expectError(.truncated, "needs 6 bytes") { _ = try PGM.decode(Array("P5 3 2 255\n".utf8) + [1, 2, 3]) }
        expectError(.truncated, "before its maxval") { _ = try PGM.decode(Array("P5 3 2".utf8)) }
        expectError(.malformed, "maxval 0") { _ = try PGM.decode(Array("P5 1 1 0\n".utf8) + [0]) }
        expectError(.malformed, "above maxval 10") { _ = try PGM.decode(Array("P2 2 1 10\n3 11\n".utf8)) }
        expectError(.malformed, "too large") { _ = try PGM.decode(Array("P5 99999999999999999999999 1 255\n".utf8)) }
        // A 24-byte file claiming 40 000² pixels used to allocate 3.1 GB first; text (P2) files too.
        let claim = Array("P5 40000 40000 255\n".utf8) + [1, 2, 3, 4, 5]
        #expect(claim.count == 24)
        expectError(.truncated, "PGM 40000×40000 needs 1600000000 bytes of pixels, the file has 5") { _ = try PGM.decode(claim) }
        expectError(.truncated, "needs 1600000000 pixels, the file has 7 bytes after its header") {
            _ = try PGM.decode(Array("P2 40000 40000 255\n1 2 3\n".utf8))
        }
    }

    @Test func filesNamedInErrors() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.file("broken.npy")
        try AtomicFile.write(Array("\u{93}NUMPY garbage".utf8), to: path)
        let error = #expect(throws: UnrollIOError.self) { _ = try Npy.read(path) }
        #expect(error?.description.hasPrefix(path + ": ") == true)
        expectError(.notFound, "no such file") { _ = try Safetensors.read(dir.file("absent.safetensors")) }
        expectError(.unreadable, "is a directory") { _ = try PNG.read(dir.path) }
    }

    /// Decoders stop at the decoded-size limit before allocating (1 GiB by default, raised by
    /// UNROLL_MAX_DECODED_BYTES): a gzip bomb, a PNG declaring a huge image, an archive declaring huge members.
    @Test func decodedSizeIsLimited() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let bomb = dir.file("zeros.csv.gz")
        try Data(Zlib.gzip([UInt8](repeating: 0x30, count: 100_000))).write(to: URL(fileURLWithPath: bomb))
        expectError(.unsupported, "more than the limit of 1000 bytes (raise it with UNROLL_MAX_DECODED_BYTES)") {
            _ = try FileBytes.readMaybeGzip(bomb, limit: 1000)
        }
        #expect(try FileBytes.readMaybeGzip(bomb).count == 100_000)
        let png = PNG.encode(Raster(width: 20, height: 20, channels: 1, fill: 9))
        expectError(.unsupported, "PNG 20×20 would decode to 420 bytes, more than the limit of 100") { _ = try PNG.decode(png, limit: 100) }
        let npz = Npz.encode([("a", Tensor(zeros: [100]))])
        expectError(.unsupported, "would decode to 528 bytes, more than the limit of 500") { _ = try Zip.entries(npz, limit: 500) }
        // Gzipped .npy and IDX files go through the same limit (a 10 GiB .npy.gz or IDX .gz bomb).
        let npyBomb = dir.file("big.npy.gz"), idxBomb = dir.file("big-ubyte.gz")
        try Data(Zlib.gzip(Npy.encode(Tensor(zeros: [50, 50])))).write(to: URL(fileURLWithPath: npyBomb))
        try Data(Zlib.gzip(IDX.encode(uint8: [UInt8](repeating: 0, count: 10_000), shape: [100, 100]))).write(to: URL(fileURLWithPath: idxBomb))
        // A scoped limit: setting the environment variable here would lower it for the tests running
        // beside this one (`unroll` reading the variable is tested through the CLI, in a process of its own).
        DecodeLimit.$override.withValue(5000) {
            expectError(.unsupported, "more than the limit of 5000 bytes (raise it with UNROLL_MAX_DECODED_BYTES)") { _ = try DataFile.read(npyBomb) }
            expectError(.unsupported, "more than the limit of 5000 bytes (raise it with UNROLL_MAX_DECODED_BYTES)") { _ = try IDX.read(idxBomb) }
        }
        #expect(try DataFile.read(npyBomb).arrays.first?.array.shape == [50, 50])   // under the default limit
        #expect(DecodeLimit.bytes == DecodeLimit.defaultBytes || ProcessInfo.processInfo.environment[DecodeLimit.environmentVariable] != nil)
    }
}
