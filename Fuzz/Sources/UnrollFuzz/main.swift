import CLibFuzzer
import Foundation
import UnrollIO

// Runs libFuzzer's loop over one reader: decodes each input with the reader UNROLL_FUZZ_READER names. A reader may
// return or throw, but its message must be one line; anything else (a trap, an address-sanitizer
// report, a hang, an allocation past -malloc_limit_mb) is a finding.

private let reader: (name: String, decode: FormatReaders.Decode) = {
    let name = ProcessInfo.processInfo.environment["UNROLL_FUZZ_READER"] ?? ""
    guard let decode = FormatReaders.named(name) else {
        let names = FormatReaders.all.map(\.name).joined(separator: ", ")
        FileHandle.standardError.write(Data("UNROLL_FUZZ_READER must be one of \(names); got '\(name)'\n".utf8))
        exit(2)
    }
    return (name, decode)
}()

private func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    do {
        try reader.decode(bytes)
    } catch {
        let message = "\(error)"
        if message.contains("\n") { fatalError("\(reader.name): a multi-line message: \(message.debugDescription)") }
    }
    return 0
}

_ = reader
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOneInput($0, $1) })
