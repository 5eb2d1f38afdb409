// TFRecord framing, the container of TensorBoard event files: a sequence of records, each
//
//     uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes
//     data[length]                  | uint32 masked CRC-32C of the data
//
// (CRCs little-endian, masked with `CRC32C.masked`).

public enum TFRecord {
    /// Bytes of framing around each record's data: 8 + 4 before it, 4 after it.
    public static let overhead = 16

    /// One record: the length, its masked CRC, `data`, the data's masked CRC.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + overhead)
        func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        }
        appendLittleEndian(UInt64(data.count))
        appendLittleEndian(CRC32C.masked(CRC32C.checksum(out)))
        out.append(contentsOf: data)
        appendLittleEndian(CRC32C.masked(CRC32C.checksum(data)))
        return out
    }

    /// The records of a whole file's `bytes`, as ranges of their data in `bytes`, after
    /// checking both CRCs of every record. Errors are `ImportError`s naming `path`, the
    /// record (0-based) and its byte offset: `.truncated` when the file ends inside a
    /// record, `.checksumMismatch` when a CRC differs.
    public static func records(in bytes: [UInt8], path: String) throws -> [Range<Int>] {
        let scan = try scan(bytes, path: path, allowingTruncatedTail: false)
        return scan.records
    }

    /// `records(in:path:)`, except that with `allowingTruncatedTail` a file that ends inside
    /// its last record gives the complete records before it (what a killed writer leaves,
    /// and what TensorBoard reads) and `truncatedTail` true.
    static func scan(_ bytes: [UInt8], path: String,
                     allowingTruncatedTail: Bool) throws -> (records: [Range<Int>], truncatedTail: Bool) {
        var ranges: [Range<Int>] = []
        var offset = 0
        func littleEndian32(_ at: Int) -> UInt32 {
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << UInt32(8 * $1) }
        }
        func truncated(_ what: String) throws -> (records: [Range<Int>], truncatedTail: Bool) {
            guard allowingTruncatedTail else {
                throw ImportError(path: path, kind: .truncated,
                                  reason: "truncated event file: record \(ranges.count) at byte \(offset) \(what); "
                                      + "the writer stopped mid-record (a killed run?): the \(ranges.count) records "
                                      + "before it are intact")
            }
            return (ranges, true)
        }
        func corrupt(_ what: String, stored: UInt32, computed: UInt32) -> ImportError {
            ImportError(path: path, kind: .checksumMismatch,
                        reason: "corrupt event file: record \(ranges.count) at byte \(offset) has a \(what) CRC of "
                            + "\(hex32(stored)), computed \(hex32(computed)); the \(ranges.count) records before it "
                            + "are intact")
        }
        while offset < bytes.count {
            guard bytes.count - offset >= 12 else {
                return try truncated("has \(bytes.count - offset) of its 12 header bytes")
            }
            let length = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << UInt64(8 * $1) }
            let storedLengthCRC = littleEndian32(offset + 8)
            let lengthCRC = CRC32C.masked(CRC32C.checksum(Array(bytes[offset..<offset + 8])))
            guard storedLengthCRC == lengthCRC else {
                throw corrupt("length", stored: storedLengthCRC, computed: lengthCRC)
            }
            let available = bytes.count - offset - 12   // data and its CRC
            guard available >= 4, length <= UInt64(available - 4) else {
                return try truncated("announces \(length) bytes of data, the file holds \(max(available - 4, 0)) more")
            }
            let data = offset + 12 ..< offset + 12 + Int(length)
            let storedDataCRC = littleEndian32(data.upperBound)
            let dataCRC = bytes.withUnsafeBytes { CRC32C.masked(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[data]))) }
            guard storedDataCRC == dataCRC else { throw corrupt("data", stored: storedDataCRC, computed: dataCRC) }
            ranges.append(data)
            offset = data.upperBound + 4
        }
        return (ranges, false)
    }
}
