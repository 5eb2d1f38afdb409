// The protobuf wire format, as far as TensorBoard event files need it: varints, 64- and
// 32-bit little-endian fields and length-delimited fields (strings, bytes, messages).
// Messages are encoded by hand in `TensorBoardEvents.swift`, fields in field-number order
// as the reference implementation serialises them.

/// A protobuf wire type (the low 3 bits of a field key).
enum ProtobufWireType: UInt8 {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
}

/// Appends protobuf fields to a byte buffer.
struct ProtobufEncoder {
    private(set) var bytes: [UInt8] = []

    /// Base-128 varint: 7 bits per byte, least significant first, high bit set on every
    /// byte but the last. Negative Int64 values take 10 bytes (their two's complement).
    mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func appendKey(_ field: Int, _ type: ProtobufWireType) {
        appendVarint(UInt64(field) << 3 | UInt64(type.rawValue))
    }

    /// An int32 / int64 field (varint of the two's complement).
    mutating func appendInteger(_ field: Int, _ value: Int64) {
        appendKey(field, .varint)
        appendVarint(UInt64(bitPattern: value))
    }

    /// A double field (8 bytes, little-endian).
    mutating func appendDouble(_ field: Int, _ value: Double) {
        appendKey(field, .fixed64)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A float field (4 bytes, little-endian).
    mutating func appendFloat(_ field: Int, _ value: Float) {
        appendKey(field, .fixed32)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A bytes, string or embedded-message field: the length as a varint, then the bytes.
    mutating func appendLengthDelimited(_ field: Int, _ payload: [UInt8]) {
        appendKey(field, .lengthDelimited)
        appendVarint(UInt64(payload.count))
        bytes.append(contentsOf: payload)
    }
}

/// Reads the fields of one encoded protobuf message. Malformed input throws
/// `ProtobufDecodeError`, which callers turn into their file's error.
struct ProtobufDecoder {
    /// One field: its number and its value, by wire type.
    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case lengthDelimited(ArraySlice<UInt8>)
        case fixed32(UInt32)
    }

    private let bytes: ArraySlice<UInt8>
    private var offset: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        offset = bytes.startIndex
    }

    /// The next field, or nil at the end of the message.
    mutating func next() throws -> (field: Int, value: Value)? {
        guard offset < bytes.endIndex else { return nil }
        let key = try varint()
        let field = Int(truncatingIfNeeded: key >> 3)
        guard field > 0, field < 1 << 29 else { throw ProtobufDecodeError("field number \(key >> 3) is out of range") }
        switch key & 7 {
        case 0: return (field, .varint(try varint()))
        case 1: return (field, .fixed64(try littleEndian(8)))
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.endIndex - offset) else {
                throw ProtobufDecodeError("field \(field) announces \(length) bytes, \(bytes.endIndex - offset) remain")
            }
            let start = offset
            offset += Int(length)
            return (field, .lengthDelimited(bytes[start..<offset]))
        case 5: return (field, .fixed32(UInt32(try littleEndian(4))))
        default: throw ProtobufDecodeError("field \(field) has wire type \(key & 7), which is not 0, 1, 2 or 5")
        }
    }

    private mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard offset < bytes.endIndex else { throw ProtobufDecodeError("a varint runs past the end of the message") }
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte < 0x80 { return value }
        }
        throw ProtobufDecodeError("a varint is longer than 10 bytes")
    }

    private mutating func littleEndian(_ count: Int) throws -> UInt64 {
        guard bytes.endIndex - offset >= count else {
            throw ProtobufDecodeError("a \(count)-byte field runs past the end of the message")
        }
        var value: UInt64 = 0
        for i in 0..<count { value |= UInt64(bytes[offset + i]) << UInt64(8 * i) }
        offset += count
        return value
    }
}

/// An encoded protobuf message is malformed; `reason` says where.
struct ProtobufDecodeError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
