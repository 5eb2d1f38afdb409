// safetensors: reading (memory-mapped, validated) and writing (atomic) of tensor files.
//
// File layout (https://huggingface.co/docs/safetensors):
//   8 bytes    N, the header length, unsigned little-endian
//   N bytes    UTF-8 JSON object: "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}
//              plus an optional "__metadata__": {string: string}; may be padded with spaces
//   rest       the data section; offsets are byte offsets relative to its start, little-endian data
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if !_endian(little)
#error("Formats reads and writes little-endian data by reinterpreting memory; port the copies first.")
#endif

// MARK: - Element types

/// The element types a safetensors header may name. All can be read; the writer produces
/// `F32`, `I64` and `I32`.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// Whether `SafeTensorsFile.floats` / `read(_:into:count:)` accept this type.
    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16: return true
        default: return false
        }
    }
}

// MARK: - Errors

/// A safetensors file could not be read, validated or written.
///
/// `description` is one readable sentence that starts with the file's path.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    /// What went wrong, for tests and callers that branch on it.
    public enum Kind: String, Sendable {
        case io                 // open / stat / mmap / write / rename failed
        case truncated          // shorter than the 8-byte length prefix or than the header it announces
        case headerTooLarge     // announced header length over the limit or past the end of the file
        case badHeader          // not a JSON object of the expected form
        case unknownDType       // a dtype this reader does not know
        case sizeMismatch       // shape × element size differs from the byte range's length
        case offsetsOutOfRange  // a byte range is reversed or ends past the data section
        case overlap            // two tensors' byte ranges overlap
        case missingTensor      // the caller asked for a name the file does not hold
        case wrongDType         // the caller asked for floats from an integer tensor, or the reverse
        case countMismatch      // the caller's buffer size differs from the tensor's element count
    }

    public let path: String
    public let kind: Kind
    /// The problem, without the path.
    public let reason: String

    public init(path: String, kind: Kind, reason: String) {
        self.path = path
        self.kind = kind
        self.reason = reason
    }

    public var description: String { "safetensors file '\(path)': \(reason)" }
}

/// Upper bound on the JSON header, as in the reference implementation: a larger header is
/// a corrupt or hostile file, not a real one.
public let safeTensorsMaxHeaderBytes = 100_000_000

// MARK: - Reader

/// A safetensors file, memory-mapped read-only and validated when opened.
///
/// Guarantees once `init(path:)` returns: every tensor has a known dtype, a non-negative
/// shape whose byte size equals its byte range, a range inside the data section, and no two
/// ranges overlap (gaps are allowed). Reads convert to the requested element type; the file
/// stays mapped until the object is released.
public final class SafeTensorsFile: @unchecked Sendable {  // immutable after init
    /// Where one tensor lives and what it holds.
    public struct Entry: Sendable, Equatable {
        public let dtype: SafeTensorsDType
        public let shape: [Int]
        /// Byte range relative to the start of the data section.
        public let byteRange: Range<Int>
        /// Number of elements (product of `shape`; 1 for a scalar).
        public var count: Int { shape.reduce(1, *) }
    }

    public let path: String
    /// The `__metadata__` object (string values only, as the format requires); empty if absent.
    public let metadata: [String: String]
    /// Tensor names, sorted.
    public let names: [String]
    private let entries: [String: Entry]
    private let file: MappedFile
    private let dataStart: Int

    /// Opens, maps and validates `path`. Throws `SafeTensorsError` naming the path and the problem.
    public init(path: String) throws {
        self.path = path
        func fail(_ kind: SafeTensorsError.Kind, _ reason: String) -> SafeTensorsError {
            SafeTensorsError(path: path, kind: kind, reason: reason)
        }

        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch let error as FileIOError {
            throw fail(.io, error.reason)
        }
        let fileSize = file.size
        guard fileSize >= 8, let base = file.base else {
            throw fail(.truncated, "the file has \(fileSize) bytes, fewer than the 8-byte header length; it is truncated or not a safetensors file")
        }
        let headerLength = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(safeTensorsMaxHeaderBytes) else {
            throw fail(.headerTooLarge, "the header length \(headerLength) exceeds the \(safeTensorsMaxHeaderBytes)-byte limit; the file is corrupt or not a safetensors file")
        }
        guard headerLength <= UInt64(fileSize - 8) else {
            throw fail(.truncated, "the header length \(headerLength) runs past the end of the file (\(fileSize - 8) bytes after the length); the file is truncated")
        }
        let headerBytes = UnsafeRawBufferPointer(start: base + 8, count: Int(headerLength))
        let dataStart = 8 + Int(headerLength)
        let dataLength = fileSize - dataStart

        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerBytes), options: [])
        } catch {
            throw fail(.badHeader, "the header is not valid JSON (\(error.localizedDescription))")
        }
        guard let object = json as? [String: Any] else {
            throw fail(.badHeader, "the header is JSON but not an object")
        }

        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let dict = value as? [String: Any] else {
                    throw fail(.badHeader, "__metadata__ is not an object")
                }
                for (key, item) in dict {
                    guard let string = item as? String else {
                        throw fail(.badHeader, "__metadata__ value for '\(key)' is not a string")
                    }
                    metadata[key] = string
                }
                continue
            }
            guard let fields = value as? [String: Any] else {
                throw fail(.badHeader, "the entry for tensor '\(name)' is not an object")
            }
            guard let dtypeName = fields["dtype"] as? String else {
                throw fail(.badHeader, "tensor '\(name)' has no string 'dtype'")
            }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
                throw fail(.unknownDType, "tensor '\(name)' has dtype '\(dtypeName)', which this reader does not know (known: \(known))")
            }
            guard let shape = Self.integers(fields["shape"]), shape.allSatisfy({ $0 >= 0 }) else {
                throw fail(.badHeader, "tensor '\(name)' has no 'shape' list of non-negative integers")
            }
            guard let offsets = Self.integers(fields["data_offsets"]), offsets.count == 2 else {
                throw fail(.badHeader, "tensor '\(name)' has no 'data_offsets' pair of integers")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataLength else {
                throw fail(.offsetsOutOfRange, "tensor '\(name)' has data_offsets [\(begin), \(end)], outside the \(dataLength)-byte data section")
            }
            var byteCount = dtype.byteSize
            for extent in shape {
                let (product, overflow) = byteCount.multipliedReportingOverflow(by: extent)
                guard !overflow else {
                    throw fail(.sizeMismatch, "tensor '\(name)' has shape \(shape), whose byte size overflows")
                }
                byteCount = product
            }
            guard byteCount == end - begin else {
                throw fail(.sizeMismatch, "tensor '\(name)' has shape \(shape) of \(dtypeName), which needs \(byteCount) bytes, but its data_offsets [\(begin), \(end)] span \(end - begin)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, byteRange: begin..<end)
        }

        // Non-overlap: sorted by start, each non-empty range must begin at or after the previous end.
        let byStart = entries.filter { !$0.value.byteRange.isEmpty }
            .sorted { ($0.value.byteRange.lowerBound, $0.key) < ($1.value.byteRange.lowerBound, $1.key) }
        for (previous, next) in zip(byStart, byStart.dropFirst())
        where next.value.byteRange.lowerBound < previous.value.byteRange.upperBound {
            throw fail(.overlap, "tensors '\(previous.key)' \(Self.show(previous.value.byteRange)) and '\(next.key)' \(Self.show(next.value.byteRange)) overlap")
        }

        self.metadata = metadata
        self.entries = entries
        self.names = entries.keys.sorted()
        self.file = file
        self.dataStart = dataStart
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// The full entry (dtype, shape, byte range) of `name`.
    public func entry(_ name: String) throws -> Entry {
        guard let entry = entries[name] else {
            throw SafeTensorsError(path: path, kind: .missingTensor,
                                   reason: "has no tensor named '\(name)' (it holds \(names.count) tensors)")
        }
        return entry
    }

    /// Element type and shape of `name`.
    public func info(_ name: String) throws -> (dtype: SafeTensorsDType, shape: [Int]) {
        let entry = try entry(name)
        return (entry.dtype, entry.shape)
    }

    /// The raw little-endian bytes of `name`, valid while `body` runs (no alignment guarantee).
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let entry = try entry(name)
        let start = file.base! + dataStart + entry.byteRange.lowerBound
        return try body(UnsafeRawBufferPointer(start: start, count: entry.byteRange.count))
    }

    /// Copies `name` into `destination`, converting F32/F16/BF16/F64 to Float32.
    /// `count` must equal the tensor's element count. No intermediate array is made.
    public func read(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws {
        let entry = try entry(name)
        guard entry.dtype.isFloatingPoint else {
            throw SafeTensorsError(path: path, kind: .wrongDType,
                                   reason: "tensor '\(name)' is \(entry.dtype.rawValue), not a floating-point type; read it with ints(_:)")
        }
        guard count == entry.count else {
            throw SafeTensorsError(path: path, kind: .countMismatch,
                                   reason: "tensor '\(name)' has shape \(entry.shape) (\(entry.count) elements) but the destination holds \(count)")
        }
        try withRawBytes(name) { raw in
            switch entry.dtype {
            case .f32:
                // memcpy: the file gives no alignment guarantee for the source.
                if count > 0 { memcpy(destination, raw.baseAddress!, count * 4) }
            case .f64:
                for i in 0..<count {
                    destination[i] = Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                }
            case .f16:
                for i in 0..<count {
                    destination[i] = floatFromHalfBits(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                }
            case .bf16:
                for i in 0..<count {
                    destination[i] = floatFromBFloat16Bits(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                }
            default:
                preconditionFailure("unreachable: dtype checked above")
            }
        }
    }

    /// `name` as Float32 values (row-major), converted from F32/F16/BF16/F64.
    public func floats(_ name: String) throws -> [Float] {
        let count = try entry(name).count
        var values = [Float](repeating: 0, count: count)
        try values.withUnsafeMutableBufferPointer { buffer in
            try read(name, into: buffer.baseAddress!, count: count)
        }
        return values
    }

    /// `name` as integers, from any integer type or BOOL (as 0/1).
    public func ints(_ name: String) throws -> [Int] {
        let entry = try entry(name)
        let count = entry.count
        return try withRawBytes(name) { raw -> [Int] in
            func load<T: FixedWidthInteger>(_: T.Type) -> [Int] {
                (0..<count).map { Int(T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))) }
            }
            switch entry.dtype {
            case .i64: return load(Int64.self)
            case .i32: return load(Int32.self)
            case .i16: return load(Int16.self)
            case .i8: return load(Int8.self)
            case .u32: return load(UInt32.self)
            case .u16: return load(UInt16.self)
            case .u8: return load(UInt8.self)
            case .bool: return (0..<count).map { raw[$0] == 0 ? 0 : 1 }
            case .u64:
                var values: [Int] = []
                values.reserveCapacity(count)
                for i in 0..<count {
                    let value = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                    guard let int = Int(exactly: value) else {
                        throw SafeTensorsError(path: path, kind: .wrongDType,
                                               reason: "tensor '\(name)' (U64) holds \(value), which does not fit in Int")
                    }
                    values.append(int)
                }
                return values
            case .f64, .f32, .f16, .bf16:
                throw SafeTensorsError(path: path, kind: .wrongDType,
                                       reason: "tensor '\(name)' is \(entry.dtype.rawValue), not an integer type; read it with floats(_:)")
            }
        }
    }

    /// A JSON list of integer literals, or nil. JSONSerialization gives NSNumbers: booleans
    /// (type code "c") and numbers written with a fraction or exponent ("d") are refused.
    private static func integers(_ value: Any?) -> [Int]? {
        guard let list = value as? [Any] else { return nil }
        var result: [Int] = []
        for item in list {
            guard let number = item as? NSNumber,
                  !["c", "d", "f"].contains(String(cString: number.objCType)),
                  let int = item as? Int else { return nil }
            result.append(int)
        }
        return result
    }

    private static func show(_ range: Range<Int>) -> String { "[\(range.lowerBound), \(range.upperBound))" }
}

// MARK: - Element conversions

/// IEEE 754 binary16 → binary32, exact (every half is a float): normals, subnormals
/// (value = mantissa · 2⁻²⁴), ±0, ±∞ and NaN (payload kept in the top mantissa bits).
@inlinable
public func floatFromHalfBits(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = UInt32(bits >> 10) & 0x1f
    let mantissa = UInt32(bits & 0x03ff)
    if exponent == 0x1f {                        // ∞ or NaN
        return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))
    }
    if exponent == 0 {                           // ±0 or subnormal: mantissa · 2⁻²⁴, exact in Float
        let magnitude = Float(mantissa) * 0x1p-24
        return sign == 0 ? magnitude : -magnitude
    }
    // Normal: rebias the exponent from 15 to 127.
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}

/// bfloat16 → binary32: the bfloat16 bits are the upper half of the float's bits.
@inlinable
public func floatFromBFloat16Bits(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

// MARK: - Writer

/// Collects tensors and writes them as one safetensors file.
///
/// The header carries `"__metadata__": {"format": "pt", …}` (so PyTorch tooling accepts the
/// file), names sorted, data in name order, and is padded with spaces so the data section
/// starts at an 8-byte boundary. `write(to:)` is atomic (`AtomicFileWriter`: a temporary
/// in the same directory, fsync, rename over `path`).
public struct SafeTensorsWriter {
    private enum Payload {
        case bytes([UInt8])
        case floatPointer(UnsafePointer<Float>, count: Int)
    }
    private struct Item {
        let dtype: SafeTensorsDType
        let shape: [Int]
        let payload: Payload
        var byteCount: Int {
            switch payload {
            case .bytes(let bytes): return bytes.count
            case .floatPointer(_, let count): return count * 4
            }
        }
    }

    private var items: [String: Item] = [:]
    /// String metadata written under `__metadata__`; `format` is always `pt`.
    public var metadata: [String: String]

    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Names added so far, sorted.
    public var names: [String] { items.keys.sorted() }

    private mutating func insert(_ name: String, _ item: Item, count: Int) {
        precondition(name != "__metadata__" && !name.isEmpty, "SafeTensorsWriter: invalid tensor name '\(name)'")
        precondition(items[name] == nil, "SafeTensorsWriter: tensor '\(name)' added twice")
        precondition(item.shape.allSatisfy { $0 >= 0 } && item.shape.reduce(1, *) == count,
                     "SafeTensorsWriter: '\(name)' has \(count) values for shape \(item.shape)")
        items[name] = item
    }

    private static func bytes<T>(of values: [T]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    /// Adds `values` as F32 with `shape` (row-major; product of `shape` == `values.count`).
    public mutating func add(_ name: String, shape: [Int], floats values: [Float]) {
        insert(name, Item(dtype: .f32, shape: shape, payload: .bytes(Self.bytes(of: values))), count: values.count)
    }

    /// Adds `count` floats at `pointer` as F32 without copying them now: the memory must stay
    /// valid and unchanged until `write(to:)` returns (checkpointing straight from parameters).
    public mutating func add(_ name: String, shape: [Int], pointer: UnsafePointer<Float>, count: Int) {
        insert(name, Item(dtype: .f32, shape: shape, payload: .floatPointer(pointer, count: count)), count: count)
    }

    /// Adds `values` as I64.
    public mutating func add(_ name: String, shape: [Int], int64s values: [Int64]) {
        insert(name, Item(dtype: .i64, shape: shape, payload: .bytes(Self.bytes(of: values))), count: values.count)
    }

    /// Adds `values` as I32.
    public mutating func add(_ name: String, shape: [Int], int32s values: [Int32]) {
        insert(name, Item(dtype: .i32, shape: shape, payload: .bytes(Self.bytes(of: values))), count: values.count)
    }

    /// The header bytes (JSON plus space padding to a multiple of 8) for the current items.
    func headerBytes() -> [UInt8] {
        var meta = metadata
        meta["format"] = "pt"
        var json = "{\"__metadata__\":{"
        json += meta.keys.sorted().map { "\(jsonString($0)):\(jsonString(meta[$0]!))" }.joined(separator: ",")
        json += "}"
        var offset = 0
        for name in names {
            let item = items[name]!
            let end = offset + item.byteCount
            json += ",\(jsonString(name)):{\"dtype\":\"\(item.dtype.rawValue)\",\"shape\":[\(item.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"
        var bytes = Array(json.utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    /// Writes the file atomically; on failure `path` is left as it was and the temporary removed.
    public func write(to path: String) throws {
        do {
            let output = try AtomicFileWriter(path: path)
            let header = headerBytes()
            try output.write(integer: UInt64(header.count))
            try output.write(header)
            for name in names {
                switch items[name]!.payload {
                case .bytes(let bytes):
                    try output.write(bytes)
                case .floatPointer(let pointer, let count):
                    try output.write(UnsafeRawBufferPointer(start: pointer, count: count * 4))
                }
            }
            try output.commit()
        } catch let error as FileIOError {
            throw SafeTensorsError(path: path, kind: .io, reason: error.reason)
        }
    }
}
