// CRC-32C (Castagnoli), the checksum of TFRecord framing (TensorBoard event files). It is
// not zlib's CRC-32 (`crc32Update`, the ISO-HDLC / PNG polynomial): same algorithm,
// different polynomial, so zlib cannot compute it.

/// CRC-32C: the reflected CRC of polynomial 0x1EDC6F41 (bit-reversed: 0x82F63B78), initial
/// value 0xFFFFFFFF, final XOR 0xFFFFFFFF (RFC 3720 §B.4; iSCSI, ext4, TFRecord), computed a
/// byte at a time from a 256-entry table: crc ← table[(crc ⊕ byte) & 0xFF] ⊕ (crc >> 8).
///
/// Check values: "123456789" → 0xE3069283; 32 zero bytes → 0x8A9136AA.
public enum CRC32C {
    /// table[b] = the CRC register after shifting the byte b through it (8 reflected steps).
    private static let table: [UInt32] = (0..<256).map { byte -> UInt32 in
        var crc = UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    /// The CRC-32C of `bytes`, continuing from `initial` (the checksum of the bytes before
    /// them; 0 for a fresh checksum), so checksum(a + b) == checksum(b, initial: checksum(a)).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        var crc = ~initial
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return ~crc
    }

    /// The CRC-32C of `bytes` (see `checksum(_:initial:)`).
    public static func checksum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, initial: initial) }
    }

    /// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2³²), a rotation
    /// plus a constant, so that a CRC stored inside checksummed data does not checksum to
    /// a fixed value.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
