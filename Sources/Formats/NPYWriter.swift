/// NumPy `.npy` version 1.0 files of little-endian float32 or int64 (`np.load` reads them):
///
///     "\x93NUMPY" 0x01 0x00, header length (UInt16 LE),
///     "{'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }" padded with spaces and
///     ended by "\n" so that the data starts at a multiple of 64 bytes, then the values C-order.
///
/// `descr` is `'<f4'` for `[Float]` and `'<i8'` for `[Int64]` (the `integers:` variants).
public enum NPYWriter {
    /// The file bytes of a float32 array of `shape` (`values.count` must equal its product).
    public static func encode(_ values: [Float], shape: [Int]) -> [UInt8] {
        encode(values, descr: "<f4", shape: shape)
    }

    /// The file bytes of an int64 array of `shape` (`values.count` must equal its product).
    public static func encode(integers values: [Int64], shape: [Int]) -> [UInt8] {
        encode(values, descr: "<i8", shape: shape)
    }

    /// Writes a float32 array atomically (`AtomicFileWriter`: temporary file in the same
    /// folder, fsync, rename).
    public static func write(_ values: [Float], shape: [Int], to path: String) throws {
        try AtomicFileWriter.write(encode(values, shape: shape), to: path)
    }

    /// Writes an int64 array atomically.
    public static func write(integers values: [Int64], shape: [Int], to path: String) throws {
        try AtomicFileWriter.write(encode(integers: values, shape: shape), to: path)
    }

    /// Header and raw little-endian values of a C-order array whose elements NumPy
    /// describes as `descr`.
    private static func encode<Element>(_ values: [Element], descr: String, shape: [Int]) -> [UInt8] {
        precondition(shape.reduce(1, *) == values.count, "NPYWriter: \(values.count) values for shape \(shape)")
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let length = UInt16(header.utf8.count)
        bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
        bytes += Array(header.utf8)
        values.withUnsafeBytes { bytes += $0 }   // little-endian host (as Formats assumes)
        return bytes
    }
}
